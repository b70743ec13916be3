package procedures

import (
	"context"
	"time"

	"github.com/nocobot/nocobot/events"
)

// stepEnv is what a step sees of its run: the cluster, the run's
// parameters and facts, and a way to report progress.
type stepEnv struct {
	rn   *runner
	c    *Cluster
	step int
	// report, when set, takes the progress lines instead: work that runs
	// beside the runner (startEarly) never touches the run itself.
	report func(msg string)
}

// facts reads the run's facts as they are now.
func (s *stepEnv) facts() Facts {
	s.rn.mu.Lock()
	defer s.rn.mu.Unlock()
	return Facts{m: cloneFacts(s.rn.run.Facts)}
}

// record changes the run's facts; save makes them durable.
func (s *stepEnv) record(f func(w factWriter)) {
	s.rn.mu.Lock()
	defer s.rn.mu.Unlock()
	f(factWriter{r: &s.rn.run})
}

func (s *stepEnv) param(k string) string { return s.rn.run.Params[k] }

func (s *stepEnv) clusterName() string { return s.rn.run.Cluster }

func (s *stepEnv) runID() string { return s.rn.run.ID }

func (s *stepEnv) now() time.Time { return s.rn.e.clock.Now() }

// save records facts learned mid-step before the step's next outside action.
func (s *stepEnv) save(ctx context.Context) error { return s.rn.persist(ctx) }

// progress publishes a progress line for the running step. Several
// goroutines of one step may report at once (nodes changed or started
// together): the line is set and published under the run's lock, so the
// events come out in the order the lines were set and the last event
// shows the step's progress as recorded. Publishing never blocks.
func (s *stepEnv) progress(msg string) {
	if s.report != nil {
		s.report(msg)
		return
	}
	x := s.rn
	x.mu.Lock()
	defer x.mu.Unlock()
	x.run.Steps[s.step].Progress = msg
	x.e.publish(events.StepProgress, x.run, s.step, msg, nil)
}
