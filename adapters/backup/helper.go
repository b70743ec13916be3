package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// volumeHelper runs a command in a short-lived container that mounts
// another container's volumes. It works while that container is stopped,
// which is how a restore finds the nodes: a stopped node cannot run a
// command itself.
type volumeHelper interface {
	// RunWithVolumesOf runs cmd with the volumes of container, whose
	// folder path must lie on one of them (errNotOnVolume otherwise).
	RunWithVolumesOf(ctx context.Context, container, path string, cmd []string) error
}

// errNotOnVolume: the folder is in the container's own file system, which
// no other container can see.
var errNotOnVolume = errors.New("the folder is not on a volume or bind mount")

// dockerClient is what the Docker adapter exposes for calls this package
// makes itself.
type dockerClient interface {
	Client() *client.Client
}

// helperFor returns the volume helper the containers offer, or nil.
func helperFor(containers Containers) volumeHelper {
	switch c := containers.(type) {
	case volumeHelper:
		return c
	case dockerClient:
		return dockerHelper{cli: c.Client()}
	}
	return nil
}

// dockerHelper runs helpers on the node's own image (so no image is
// pulled, and an air-gapped engine has it), as root, without network.
type dockerHelper struct {
	cli *client.Client
}

// helperLabel marks helper containers, so a leftover one is recognisable.
const helperLabel = "nocobot.helper"

func (h dockerHelper) RunWithVolumesOf(ctx context.Context, name, path string, cmd []string) error {
	ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
	insp, err := h.cli.ContainerInspect(ictx, name, client.ContainerInspectOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("inspect %s: %w", name, err)
	}
	onMount := false
	for _, m := range insp.Container.Mounts {
		d := strings.TrimSuffix(m.Destination, "/")
		if path == d || strings.HasPrefix(path, d+"/") {
			onMount = true
		}
	}
	if !onMount {
		return fmt.Errorf("%s:%s: %w", name, path, errNotOnVolume)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	created, err := h.cli.ContainerCreate(cctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:      insp.Container.Image,
			Entrypoint: cmd,
			User:       "0:0",
			WorkingDir: "/",
			Labels:     map[string]string{helperLabel: "storage of " + strings.TrimPrefix(insp.Container.Name, "/")},
		},
		HostConfig: &container.HostConfig{VolumesFrom: []string{insp.Container.ID}, NetworkMode: "none"},
	})
	cancel()
	if err != nil {
		return fmt.Errorf("create a helper container with the volumes of %s: %w", name, err)
	}
	defer func() {
		// Removed whatever happened, also when ctx has ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = h.cli.ContainerRemove(rctx, created.ID, client.ContainerRemoveOptions{Force: true})
	}()
	wait := h.cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = h.cli.ContainerStart(sctx, created.ID, client.ContainerStartOptions{})
	cancel()
	if err != nil {
		return fmt.Errorf("start the helper container: %w", err)
	}
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
	case err := <-wait.Error:
		return fmt.Errorf("wait for the helper container: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}
	if code == 0 {
		return nil
	}
	return fmt.Errorf("helper container with the volumes of %s: exit code %d%s", name, code, h.stderr(ctx, created.ID))
}

// stderr is the tail of a helper's error output, for the error message.
func (h dockerHelper) stderr(ctx context.Context, id string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := h.cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStderr: true, Tail: "5"})
	if err != nil {
		return ""
	}
	defer rc.Close()
	tail := &tailBuffer{max: 1 << 10}
	if _, err := stdcopy.StdCopy(io.Discard, tail, rc); err != nil {
		return ""
	}
	if s := strings.TrimSpace(tail.String()); s != "" {
		return ": " + s
	}
	return ""
}
