package docker

import (
	"context"
	"errors"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Error is an engine failure, named after the node (or container) and the
// action. The cause stays reachable with errors.Is/As: errdefs
// (cerrdefs.IsNotFound, IsConflict…), context.DeadlineExceeded.
type Error struct {
	Node   string // node or container name
	Action string // "stop", "start", "set image", "exec …"
	Reason string // short words a user can act on
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s: %s", e.Node, e.Action, e.Reason)
	if d := detail(e.Err); d != "" && !strings.Contains(e.Reason, d) {
		msg += ": " + d
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// detail is the engine's own message, without the client's "Error
// response from daemon:" prefix.
func detail(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	s = strings.TrimPrefix(s, "Error response from daemon: ")
	return s
}

// wrap turns an engine error into one that names the node and the action
// and says in plain words what happened.
func (e *Engine) wrap(node, action string, err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	reason := "engine error"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		reason = "timed out waiting for the Docker engine"
	case errors.Is(err, context.Canceled):
		reason = "cancelled"
	case client.IsErrConnectionFailed(err) || isDialError(err):
		reason = "Docker engine unreachable at " + e.host
	case cerrdefs.IsNotFound(err):
		reason = "not found"
	case cerrdefs.IsConflict(err):
		reason = "conflict"
	case cerrdefs.IsUnauthorized(err) || cerrdefs.IsPermissionDenied(err):
		reason = "access denied"
	case cerrdefs.IsInvalidArgument(err):
		reason = "rejected by the engine"
	case cerrdefs.IsUnavailable(err):
		reason = "engine unavailable"
	}
	return &Error{Node: node, Action: action, Reason: reason, Err: err}
}

func isDialError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connect: connection refused") ||
		strings.Contains(s, "connect: no such file or directory") ||
		strings.Contains(s, "Cannot connect to the Docker daemon") ||
		strings.Contains(s, "cannot connect to the Docker daemon")
}
