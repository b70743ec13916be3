// Package store holds what nocobot persists: runs with their steps,
// decisions, audit entries, maintenance windows and small notes the fronts
// keep (such as the Slack thread of a run). Implementations live in
// subpackages (sqlite, the embedded default that several processes on one
// machine share, and postgres, for replicas) and must pass the shared
// suite in storetest.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Errors every implementation returns (possibly wrapped) so callers can
// test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrClusterBusy: CreateRun found an unfinished run on the cluster.
	ErrClusterBusy = errors.New("cluster busy")
	// ErrNotOwner: the run is owned by another engine whose lease is live.
	ErrNotOwner = errors.New("run owned by another engine")
	// ErrAlreadyDecided: a decision for that checkpoint exists already.
	ErrAlreadyDecided = errors.New("already decided")
	// ErrExists: an object with that id exists already.
	ErrExists = errors.New("already exists")
)

// RunState is where a run is in its life.
type RunState string

const (
	StatePending     RunState = "pending"
	StateRunning     RunState = "running"
	StateWaiting     RunState = "waiting" // at a checkpoint, for a human
	StateFailed      RunState = "failed"  // a step failed; waiting for retry / roll back / abort
	StateRollingBack RunState = "rolling back"
	StateSucceeded   RunState = "succeeded"
	StateRolledBack  RunState = "rolled back"
	StateAborted     RunState = "aborted"
)

// Finished reports whether no more work will happen in a run in state s.
func (s RunState) Finished() bool {
	return s == StateSucceeded || s == StateRolledBack || s == StateAborted
}

// StepStatus is where one step is.
type StepStatus string

const (
	StepPending StepStatus = "pending"
	StepRunning StepStatus = "running"
	StepDone    StepStatus = "done"
	StepFailed  StepStatus = "failed"
	StepSkipped StepStatus = "skipped"
	// StepWaiting: a checkpoint step waiting for its decision.
	StepWaiting StepStatus = "waiting"
)

// Step is one recorded step of a run.
type Step struct {
	Name     string     `json:"name"`  // stable identifier, e.g. "stop-nodes"
	Title    string     `json:"title"` // what a person reads, e.g. "Stop all app nodes"
	Status   StepStatus `json:"status"`
	Started  time.Time  `json:"started,omitzero"`
	Ended    time.Time  `json:"ended,omitzero"`
	Attempt  int        `json:"attempt"`
	Detail   string     `json:"detail,omitempty"`   // outcome or failure reason
	Progress string     `json:"progress,omitempty"` // latest progress line while running
	Rollback bool       `json:"rollback,omitempty"` // part of the roll-back path
}

// Checkpoint is the question a run in state waiting or failed asks.
type Checkpoint struct {
	ID       string    `json:"id"`   // unique within the run, e.g. "verify-1"
	Kind     string    `json:"kind"` // "verify", "manual", "failure", "interrupted"
	Step     int       `json:"step"` // index into Run.Steps
	Question string    `json:"question"`
	Options  []Action  `json:"options"`
	URL      string    `json:"url,omitempty"` // node to check
	Opened   time.Time `json:"opened"`
	Deadline time.Time `json:"deadline,omitzero"` // zero: no deadline
	Reminded int       `json:"reminded,omitempty"`
}

// Action is what a decision asks for.
type Action string

const (
	ActionContinue Action = "continue"
	ActionRollback Action = "rollback"
	ActionAbort    Action = "abort"
	ActionRetry    Action = "retry"
)

// Decision answers a checkpoint. Checkpoint "" with ActionAbort is a
// cancel request that applies whatever the run is doing.
type Decision struct {
	RunID      string    `json:"run_id"`
	Checkpoint string    `json:"checkpoint"`
	Action     Action    `json:"action"`
	By         string    `json:"by"` // user id, "terminal", "timeout", "scheduler"
	ByName     string    `json:"by_name,omitempty"`
	Via        string    `json:"via"` // "slack", "terminal", "engine"
	At         time.Time `json:"at"`
}

// Run is one execution of a procedure on a cluster.
type Run struct {
	ID        string            `json:"id"`
	Cluster   string            `json:"cluster"`
	Procedure string            `json:"procedure"` // "upgrade", "maintain", "start"
	Params    map[string]string `json:"params,omitempty"`
	Requester string            `json:"requester"`
	Via       string            `json:"via,omitempty"`
	State     RunState          `json:"state"`
	Steps     []Step            `json:"steps"`
	// Current is the index of the step being run or waited on.
	Current    int         `json:"current"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Created    time.Time   `json:"created"`
	Updated    time.Time   `json:"updated"`
	Ended      time.Time   `json:"ended,omitzero"`
	// Facts gathered by the steps that later steps and roll-back need:
	// versions, previous images per node, backup id, downtime marks.
	Facts map[string]string `json:"facts,omitempty"`
	// Owner is the engine executing the run; LeaseUntil when its claim lapses.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// Fact returns a fact or "".
func (r *Run) Fact(k string) string { return r.Facts[k] }

// SetFact records a fact.
func (r *Run) SetFact(k, v string) {
	if r.Facts == nil {
		r.Facts = map[string]string{}
	}
	r.Facts[k] = v
}

// AuditEntry records a command, click or refusal.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	User    string    `json:"user"`
	Channel string    `json:"channel,omitempty"`
	Via     string    `json:"via"`    // "slack", "terminal", "scheduler"
	Action  string    `json:"action"` // the command text or the button
	RunID   string    `json:"run_id,omitempty"`
	Outcome string    `json:"outcome"` // "ok", "refused: …", "error: …"
}

// AuditQuery filters the audit log; zero fields match all.
type AuditQuery struct {
	Since time.Time
	RunID string
	Limit int // 0: all
}

// Window is a maintenance window scheduled with cron.
type Window struct {
	ID        string        `json:"id"`
	Cluster   string        `json:"cluster"`
	Spec      string        `json:"spec"`    // cron expression or descriptor
	TZ        string        `json:"tz"`      // IANA zone
	Command   string        `json:"command"` // procedure and its arguments, as typed
	Duration  time.Duration `json:"duration"`
	Announce  time.Duration `json:"announce"`
	Approval  bool          `json:"approval"` // an authorized Start click is needed
	Paused    bool          `json:"paused"`
	CreatedBy string        `json:"created_by"`
	Created   time.Time     `json:"created"`
	// NextStart is the truth about when the window opens next: a restart
	// neither loses nor doubles a window.
	NextStart time.Time `json:"next_start"`
	// Announced is the NextStart value that was last announced.
	Announced time.Time `json:"announced,omitzero"`
	// Skip is a NextStart value that someone chose to skip.
	Skip       time.Time `json:"skip,omitzero"`
	FromConfig bool      `json:"from_config,omitempty"`
}

// Store persists everything. Every method that returns without error has
// made its change durable: a kill -9 afterwards loses nothing.
//
// Run ownership: CreateRun and ClaimRun give the caller (an engine id) a
// lease; UpdateRun fails with ErrNotOwner when another owner holds a live
// lease, so two engines never both drive one run.
type Store interface {
	// CreateRun records a new run. It fails with ErrClusterBusy (and the
	// unfinished run) when the cluster has an unfinished run: this is the
	// cluster lock.
	CreateRun(ctx context.Context, r Run) (Run, error)
	// UpdateRun replaces a run's record (owner must hold the lease). When
	// the run becomes finished the cluster lock is released.
	UpdateRun(ctx context.Context, r Run) error
	GetRun(ctx context.Context, id string) (Run, error)
	// ListRuns returns runs newest first; cluster "" means all, limit 0 all.
	ListRuns(ctx context.Context, cluster string, limit int) ([]Run, error)
	// ActiveRun returns the unfinished run of a cluster or ErrNotFound.
	ActiveRun(ctx context.Context, cluster string) (Run, error)
	// UnfinishedRuns returns every run not in a finished state.
	UnfinishedRuns(ctx context.Context) ([]Run, error)
	// ClaimRun makes owner the run's owner until until, if the run has no
	// owner, the same owner, or a lapsed lease. It returns the claimed run.
	ClaimRun(ctx context.Context, id, owner string, until time.Time) (Run, error)
	// ReleaseRun drops owner's claim (on shutdown) so another engine can
	// take the run at once.
	ReleaseRun(ctx context.Context, id, owner string) error

	// Decide records d unless a decision for (run, checkpoint) exists, in
	// which case it returns the existing one and ErrAlreadyDecided.
	Decide(ctx context.Context, d Decision) (Decision, error)
	// Decisions returns every decision of a run, oldest first.
	Decisions(ctx context.Context, runID string) ([]Decision, error)
	// WatchDecisions delivers the run id of every decision recorded from
	// now on, by this process or another, until ctx ends.
	WatchDecisions(ctx context.Context) (<-chan string, error)

	AppendAudit(ctx context.Context, e AuditEntry) error
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) // newest first
	PruneAudit(ctx context.Context, before time.Time) (int, error)

	PutWindow(ctx context.Context, w Window) error
	GetWindow(ctx context.Context, id string) (Window, error)
	ListWindows(ctx context.Context) ([]Window, error)
	DeleteWindow(ctx context.Context, id string) error
	// AdvanceWindow moves a window's NextStart from from to to only if it
	// is still from: of several replicas, exactly one wins a start.
	AdvanceWindow(ctx context.Context, id string, from, to time.Time) (bool, error)
	// UpdateWindow changes one window atomically: it reads the window,
	// calls change on it once and saves what change left, while no other
	// writer (process or replica) can change that window, so a change made
	// elsewhere meanwhile (a Skip, a pause) is never undone. It returns the
	// window as saved. When change returns an error nothing is written and
	// that error is returned as it is; a missing window gives ErrNotFound
	// and change is not called. change must not alter the window's id.
	// change runs while the window (PostgreSQL: its row; SQLite: the whole
	// file) is locked: it must do no I/O and return at once.
	UpdateWindow(ctx context.Context, id string, change func(*Window) error) (Window, error)

	// PutNote and GetNote keep small values for the fronts (scope such as
	// "slack-thread", key a run id). GetNote returns ErrNotFound.
	PutNote(ctx context.Context, scope, key, value string) error
	GetNote(ctx context.Context, scope, key string) (string, error)

	// SeenOnce records key for ttl and reports whether this is its first
	// sighting since the last record of it expired: of several callers
	// (processes or replicas) with one key, exactly one gets true. It
	// guards against replayed requests.
	SeenOnce(ctx context.Context, key string, ttl time.Duration) (first bool, err error)

	Close() error
}

// CheckSeenOnce refuses what SeenOnce cannot guard: an empty key or a
// time to keep it that is not positive.
func CheckSeenOnce(key string, ttl time.Duration) error {
	if key == "" || ttl <= 0 {
		return fmt.Errorf("seen once: need a key and a positive time to keep it (got %q, %s)", key, ttl)
	}
	return nil
}

// ChangeWindow is the part of UpdateWindow that every implementation
// shares: it calls change on w, refuses a change of id, and returns w's
// new record and whether it differs from the old one (an unchanged window
// need not be written). An error from change is returned as it is.
func ChangeWindow(w *Window, change func(*Window) error) (data []byte, changed bool, err error) {
	before, err := json.Marshal(w)
	if err != nil {
		return nil, false, fmt.Errorf("window %s: %w", w.ID, err)
	}
	id := w.ID
	if err := change(w); err != nil {
		return nil, false, err
	}
	if w.ID != id {
		return nil, false, fmt.Errorf("window %s: a change cannot rename it (to %q)", id, w.ID)
	}
	data, err = json.Marshal(w)
	if err != nil {
		return nil, false, fmt.Errorf("window %s: %w", id, err)
	}
	return data, !bytes.Equal(before, data), nil
}

// Clone copies a run deeply, so that readers of the copy (event
// subscribers) never share memory with the runner that changes it.
func (r Run) Clone() Run {
	r.Steps = slices.Clone(r.Steps)
	if r.Checkpoint != nil {
		cp := *r.Checkpoint
		cp.Options = slices.Clone(cp.Options)
		r.Checkpoint = &cp
	}
	r.Params = maps.Clone(r.Params)
	r.Facts = maps.Clone(r.Facts)
	return r
}
