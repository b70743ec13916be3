package nocobase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// The Backup manager's API (@nocobase/plugin-backups, resource "backup",
// dist/server/resourcers/backup-cli.js). Its task states live in the
// memory of the node that runs the task: talk to one node.

// BackupTimeout bounds a Backup manager backup or restore task.
const BackupTimeout = 2 * time.Hour

// AppBackup asks the node's Backup manager for a backup (backup:create),
// waits for it (backup:status) and returns the file's name.
func (c *Client) AppBackup(ctx context.Context, node ports.Node, progress ports.Progress) (string, error) {
	name := nodeName(node)
	var created struct {
		Data struct {
			Name string `json:"name"`
		} `json:"data"`
	}
	if err := c.apiJSON(ctx, node, http.MethodPost, "/api/backup:create", nil, &created); err != nil {
		return "", fmt.Errorf("%s: backup:create: %w", name, err)
	}
	file := created.Data.Name
	if file == "" || filepath.Base(file) != file {
		return "", fmt.Errorf("%s: backup:create named no file", name)
	}
	progress(fmt.Sprintf("%s: NocoBase's Backup manager is writing %s", name, file))
	ctx, cancel := context.WithTimeout(ctx, BackupTimeout)
	defer cancel()
	start := c.now()
	for {
		var st struct {
			Data map[string]*struct {
				InProgress bool   `json:"inProgress"`
				Message    string `json:"message"`
			} `json:"data"`
		}
		err := c.apiJSON(ctx, node, http.MethodGet, "/api/backup:status?"+url.Values{"name": {file}}.Encode(), nil, &st)
		if err != nil {
			return "", fmt.Errorf("%s: backup:status %s: %w", name, file, err)
		}
		s := st.Data[file]
		switch {
		case s == nil:
			return "", fmt.Errorf("%s: the Backup manager no longer knows task %s (did the node restart?)", name, file)
		case !s.InProgress && s.Message != "":
			return "", fmt.Errorf("%s: the Backup manager's backup failed: %s", name, s.Message)
		case !s.InProgress:
			progress(fmt.Sprintf("%s: %s written in %s", name, file, c.now().Sub(start).Round(time.Second)))
			return file, nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return "", fmt.Errorf("%s: waiting for backup %s: %w", name, file, err)
		}
	}
}

// AppBackupDownload copies a Backup manager file (backup:download) to
// dst, through a temporary file renamed at the end.
func (c *Client) AppBackupDownload(ctx context.Context, node ports.Node, file, dst string) (int64, error) {
	u, err := endpoint(node.URL, "/api/backup:download?"+url.Values{"name": {file}}.Encode())
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, BackupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	c.authorize(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: backup:download: %w", nodeName(node), transportError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		return 0, fmt.Errorf("%s: backup:download: %w", nodeName(node), c.httpError(resp.StatusCode, b))
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.part")
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(tmp, resp.Body)
	err = errors.Join(err, tmp.Sync(), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return 0, fmt.Errorf("%s: backup:download: %w", nodeName(node), err)
	}
	return n, nil
}

// AppRestore uploads an .nbdata to the node's Backup manager
// (backup:restoreUpload), which checks its metadata before it changes
// anything (a refusal comes back as the answer), restores it in the
// background and then runs NocoBase's upgrade; AppRestore waits for the
// task (backup:restoreStatus) and for the node to be healthy again.
func (c *Client) AppRestore(ctx context.Context, node ports.Node, file, password string, progress ports.Progress) error {
	name := nodeName(node)
	u, err := endpoint(node.URL, "/api/backup:restoreUpload")
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			if password != "" {
				if err := mw.WriteField("password", password); err != nil {
					return err
				}
			}
			part, err := mw.CreateFormFile("file", filepath.Base(file))
			if err != nil {
				return err
			}
			if _, err := io.Copy(part, f); err != nil {
				return err
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	rctx, cancel := context.WithTimeout(ctx, BackupTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u, pr)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Accept", "application/json")
	c.authorize(req)
	progress(fmt.Sprintf("%s: uploading %s to NocoBase's Backup manager", name, filepath.Base(file)))
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s: backup:restoreUpload: %w", name, transportError(err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: NocoBase refused the backup (nothing was restored): %w", name, c.httpError(resp.StatusCode, body))
	}
	var started struct {
		Data struct {
			Task string `json:"task"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &started); err != nil || started.Data.Task == "" {
		return fmt.Errorf("%s: backup:restoreUpload answered without a task: %s", name, shortBody(resp.StatusCode, body))
	}
	task := started.Data.Task
	progress(fmt.Sprintf("%s: NocoBase is restoring (task %s)", name, task))
	for {
		var st struct {
			Data *struct {
				InProgress bool   `json:"inProgress"`
				Message    string `json:"message"`
			} `json:"data"`
		}
		err := c.apiJSON(rctx, node, http.MethodGet, "/api/backup:restoreStatus?"+url.Values{"task": {task}}.Encode(), nil, &st)
		switch {
		case err != nil:
			// The node answers 503 while it restores and upgrades, and
			// the task's state (in its memory) may be gone afterwards:
			// its health is what counts then.
			c.log.Debug().Err(err).Str("node", name).Msg("restoreStatus")
		case st.Data == nil:
		case !st.Data.InProgress && st.Data.Message != "":
			return fmt.Errorf("%s: NocoBase's restore failed: %s", name, st.Data.Message)
		case !st.Data.InProgress:
			progress(fmt.Sprintf("%s: restore done; NocoBase runs its upgrade", name))
			return c.waitHealthy(ctx, node, progress, c.opts.Settle)
		}
		if err != nil || st.Data == nil {
			if err := c.waitHealthy(ctx, node, progress, c.opts.Settle); err != nil {
				return err
			}
			// Healthy with the task's state gone: check once more that
			// it did not fail, then trust the health.
			var again struct {
				Data *struct {
					InProgress bool   `json:"inProgress"`
					Message    string `json:"message"`
				} `json:"data"`
			}
			if c.apiJSON(rctx, node, http.MethodGet, "/api/backup:restoreStatus?"+url.Values{"task": {task}}.Encode(), nil, &again) == nil && again.Data != nil {
				if again.Data.Message != "" {
					return fmt.Errorf("%s: NocoBase's restore failed: %s", name, again.Data.Message)
				}
				if again.Data.InProgress {
					continue
				}
			}
			return nil
		}
		if err := sleep(rctx, time.Second); err != nil {
			return fmt.Errorf("%s: waiting for the restore: %w", name, err)
		}
	}
}

func (c *Client) authorize(req *http.Request) {
	if c.opts.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.opts.APIKey)
	}
	if c.opts.Role != "" {
		req.Header.Set("X-Role", c.opts.Role)
	}
}

// apiJSON sends one authorized request and decodes a 200 answer.
func (c *Client) apiJSON(ctx context.Context, node ports.Node, method, path string, body io.Reader, out any) error {
	u, err := endpoint(node.URL, path)
	if err != nil {
		return err
	}
	status, b, err := c.do(ctx, method, u, true, body, c.opts.RequestTimeout)
	if err != nil {
		return transportError(err)
	}
	if status != http.StatusOK {
		return c.httpError(status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("unexpected answer: %s", shortBody(status, b))
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
