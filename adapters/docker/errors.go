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
	// unreachable: the engine did not answer; Reason says it all.
	unreachable bool
}

func (e *Error) Error() string {
	msg := e.Action + ": " + e.Reason
	// "cluster" and "engine" name no node: the action says what failed.
	if e.Node != "" && e.Node != "cluster" && e.Node != "engine" {
		msg = e.Node + ": " + msg
	}
	if e.unreachable {
		return msg // the reason says why and what to do; the client's text repeats the host
	}
	if d := detail(e.Err); d != "" && !strings.Contains(e.Reason, d) {
		msg += ": " + d
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Cause is the reason shared by every call while the engine does not
// answer ("" otherwise), so a message lists it once (procedures.SameCause).
func (e *Error) Cause() string {
	if e.unreachable {
		return e.Reason
	}
	return ""
}

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
	reason, unreachable := "engine error", false
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		reason = "timed out waiting for the Docker engine"
	case errors.Is(err, context.Canceled):
		reason = "cancelled"
	case client.IsErrConnectionFailed(err) || isDialError(err):
		reason, unreachable = fmt.Sprintf("the Docker engine at %s does not answer (%s): start it, or correct the cluster's docker.host", e.host, dialCause(err)), true
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
	return &Error{Node: node, Action: action, Reason: reason, Err: err, unreachable: unreachable}
}

// dialCause says in a few words why a connection to the engine failed.
func dialCause(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "no such file or directory"):
		return "no socket there"
	case strings.Contains(s, "permission denied"):
		return "permission denied on its socket"
	case strings.Contains(s, "no such host"):
		return "unknown host"
	case strings.Contains(s, "i/o timeout"), strings.Contains(s, "deadline exceeded"):
		return "timed out"
	}
	return "cannot connect"
}

// execAction names a command run in a container for messages: an inline
// shell script is nocobot's own detail, not something a person can act on.
func execAction(cmd []string) string {
	if len(cmd) >= 2 && (cmd[0] == "sh" || cmd[0] == "/bin/sh" || cmd[0] == "bash") && cmd[1] == "-c" {
		return "run a shell command"
	}
	return "run " + quoteCmd(cmd)
}

func isDialError(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connect: connection refused") ||
		strings.Contains(s, "connect: no such file or directory") ||
		strings.Contains(s, "Cannot connect to the Docker daemon") ||
		strings.Contains(s, "cannot connect to the Docker daemon")
}
