package procedures

// Maintenance-window event kinds, published through SchedulerOptions.Publish
// (usually Engine.PublishWindow) with Event.Window set.
//
// They live here rather than in events.go only because the scheduler was
// built in a separate change; move them next to the run event kinds when
// convenient (same names and values).
const (
	// EventWindowAnnounced: the window opens within its lead time. The
	// snapshot's NextStart is the start announced (the Skip button's value).
	EventWindowAnnounced EventKind = "window.announced"
	// EventWindowApproval: an approval-required window is open and waits
	// for an authorized Start click (the snapshot's NextStart is its start).
	EventWindowApproval EventKind = "window.approval"
	// EventWindowStarted: the window's run started; the event carries it.
	EventWindowStarted EventKind = "window.started"
	// EventWindowSkipped: a start did not happen: skipped by a person, the
	// cluster was busy, nobody approved in time, or missed beyond grace.
	EventWindowSkipped EventKind = "window.skipped"
	// EventWindowMissed: reported at start-up for each start that passed
	// while the bot was down, saying whether it starts late or is skipped.
	EventWindowMissed EventKind = "window.missed"
	// EventWindowOverrun: the window closed while its run was unfinished.
	EventWindowOverrun EventKind = "window.overrun"
)
