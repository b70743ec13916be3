package proctest

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
)

// Pace makes a World take the time a real cluster takes and answer its
// health check in the phases a real NocoBase node goes through (connection
// refused, APP_COMMANDING upgrade while it migrates, APP_COMMANDING start
// while it loads plugins, a reload after a plugin action), for the demo.
// A World without a Pace answers at once, as the engine's tests want.
type Pace struct {
	Stop, ContainerStart time.Duration // a node's stop; a start or re-create of its container
	Refused              time.Duration // from start until the node listens
	Migrate, Boot        time.Duration // then its upgrade (on a new version) and its plugins' load
	Plugin               time.Duration // a plugin action's reload
	Pull                 time.Duration // an image's pull
	Backup, Restore, LB  time.Duration
	Poll                 time.Duration // how often WaitHealthy looks; default 150 ms
}

// SetPace paces the world from now on.
func (w *World) SetPace(p Pace) {
	if p.Poll <= 0 {
		p.Poll = 150 * time.Millisecond
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pace = &p
}

// paced reports whether the world has a Pace.
func (w *World) paced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pace != nil
}

// pullTime is how long a pull takes: 0 unpaced.
func (w *World) pullTime() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pace == nil {
		return 0
	}
	return w.pace.Pull
}

// delay is how long an action takes at the world's pace.
func (w *World) delay(action string) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pace
	if p == nil {
		return 0
	}
	verb, _, _ := strings.Cut(action, " ")
	switch verb {
	case "stop":
		return p.Stop
	case "start", "set-image":
		return p.ContainerStart
	case "backup":
		return p.Backup
	case "restore":
		return p.Restore
	case "lb":
		return p.LB
	}
	return 0
}

// phase is what a paced node's health check answers now. Called with the
// lock held.
func (w *World) phase(n *node, now time.Time) ports.AppStatus {
	p := w.pace
	switch {
	case !n.running:
		return ports.AppStatus{Message: "connection refused"}
	case n.broken:
		return ports.AppStatus{Listening: true, HTTPStatus: 503, Code: "APP_ERROR"}
	}
	commanding := func(cmd, msg string) ports.AppStatus {
		return ports.AppStatus{Listening: true, HTTPStatus: 503, Code: "APP_COMMANDING", Command: cmd, Message: msg}
	}
	up := now.Sub(n.started)
	if !n.healthy {
		if up < p.Refused {
			return ports.AppStatus{} // not listening yet
		}
		up -= p.Refused
		if w.migrating == n.name {
			if up < p.Migrate {
				const steps = 18
				return commanding("upgrade", fmt.Sprintf("run migration %d/%d", 1+int(up*steps/p.Migrate), steps))
			}
			up -= p.Migrate
		}
		if up < p.Boot {
			const plugins = 77
			return commanding("start", fmt.Sprintf("load plugin [%s], %d/%d", pluginNames[int(up*10/p.Boot)%len(pluginNames)], 1+int(up*plugins/p.Boot), plugins))
		}
	}
	if left := n.busyUntil.Sub(now); left > 0 {
		if left > p.Plugin/2 {
			return commanding(n.busyWith, "syncing database in "+strings.TrimPrefix(n.busyWith, "pm.")+" plugin")
		}
		const plugins = 78
		return commanding(n.busyWith, fmt.Sprintf("reload: load plugin [%s], %d/%d", pluginNames[int(left*10/p.Plugin)%len(pluginNames)], plugins-int(left*2*plugins/p.Plugin), plugins))
	}
	return ports.AppStatus{Healthy: true, Listening: true, HTTPStatus: 200}
}

var pluginNames = []string{"users", "acl", "file-manager", "workflow", "data-source-main", "ui-schema-storage", "auth", "ai", "backups", "localization"}

// describe is a health answer as the Docker adapter reports it.
func describe(name string, s ports.AppStatus) string {
	switch {
	case s.Healthy:
		return name + ": 200 ok"
	case !s.Listening:
		return name + ": connection refused (starting)"
	case s.Command == "":
		return fmt.Sprintf("%s: %d %s", name, s.HTTPStatus, s.Code)
	}
	return fmt.Sprintf("%s: %d %s %s — %s", name, s.HTTPStatus, s.Code, s.Command, s.Message)
}

// waitPhases polls a paced node's health check until it answers ok,
// reporting each change, as the NocoBase adapter does.
func (w *World) waitPhases(ctx context.Context, name string, progress ports.Progress) error {
	last := ""
	for {
		w.mu.Lock()
		n, err := w.find(name)
		if err != nil {
			w.mu.Unlock()
			return err
		}
		s, poll, running := w.phase(n, time.Now()), w.pace.Poll, n.running
		w.mu.Unlock()
		if !running || s.Code == "APP_ERROR" {
			return nil // WaitHealthy says why
		}
		if msg := describe(name, s); msg != last {
			progress(msg)
			last = msg
		}
		if s.Healthy {
			return nil
		}
		if err := sleep(ctx, poll); err != nil {
			return fmt.Errorf("%s not healthy in time: %s", name, last)
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
