package procedures

import (
	"context"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/format"
	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// Start during verify (an upgrade's option, off by default): once the
// first node is healthy on the new version, the others start while the
// verify checkpoint waits, traffic still on the maintenance page. The
// 503 period becomes stop + backup + first start + the longer of the
// check and the others' start, instead of their sum. Continue sends
// traffic back as soon as every node is healthy; roll back and abort
// stop the others with the work. The others start exactly as the
// start-rest step starts them (startRest: never two upgrading at once).
//
// The start runs beside the runner, in memory only: a restart during the
// checkpoint starts it again (startRest is idempotent), and one after
// Continue runs the start-rest step as usual.

// paramStartDuringVerify is the run's parameter that turns it on ("yes"),
// fixed at the run's start so that a restart keeps it.
const paramStartDuringVerify = "start_during_verify"

// runParams are a new run's parameters: the request's, with the cluster's
// settings that hold for the whole run.
func runParams(c *Cluster, req Request) map[string]string {
	p := req.params()
	if req.Procedure == ProcUpgrade && (req.StartDuringVerify == nil && c.StartDuringVerify ||
		req.StartDuringVerify != nil && *req.StartDuringVerify) {
		p[paramStartDuringVerify] = "yes"
	}
	return p
}

// startsDuringVerify reports whether a run starts the other nodes while
// its verify checkpoint waits.
func startsDuringVerify(r *store.Run) bool { return r.Params[paramStartDuringVerify] == "yes" }

// duringVerifyPlan is the plan's line on the option.
func duringVerifyPlan(c *Cluster, req Request) string {
	why := "configured"
	if req.StartDuringVerify != nil {
		why = "asked for this run"
	}
	if runParams(c, req)[paramStartDuringVerify] == "" {
		return fmt.Sprintf("off (%s): the other nodes start after you continue at the check, as NocoBase's guide orders it", why)
	}
	return fmt.Sprintf("on (%s): the other nodes start while you check the first, traffic still on the maintenance page; "+
		"continue sends traffic back as soon as all are healthy, roll back or abort stops them", why)
}

func verifyStepDef(early bool) stepDef {
	d := stepDef{name: "verify", title: "Verify checkpoint", checkpoint: "verify", question: func(env *stepEnv) (string, string) {
		f := env.facts()
		q := fmt.Sprintf("%s runs %s on one node (%s). Check it works, then continue, roll back (restores backup %s) or abort.",
			env.clusterName(), f.ToVersion(), f.TargetImage(), f.BackupID())
		if early {
			q += " Start during verify is on: the other nodes are starting meanwhile, traffic still on the maintenance page; " +
				"continue sends traffic back as soon as all are healthy, roll back or abort stops them."
		}
		return q, f.FirstURL()
	}}
	if early {
		d.title = "Verify checkpoint, the other nodes starting meanwhile (traffic still on the maintenance page)"
		d.meanwhile = func(ctx context.Context, env *stepEnv) (string, error) {
			f := env.facts()
			return startRest(ctx, env, upgradeTarget(f, f.Nodes()))
		}
		d.undoMeanwhile = func(ctx context.Context, env *stepEnv) (string, error) {
			return stopNodes(ctx, env, env.facts().FirstNode())
		}
	}
	return d
}

func startRestStepDef(early bool) stepDef {
	d := stepDef{name: "start-rest", title: "Start the other nodes (never two upgrading at once), each waited healthy", idempotent: true,
		do: func(ctx context.Context, env *stepEnv) (string, error) {
			f := env.facts()
			return startRest(ctx, env, upgradeTarget(f, f.Nodes()))
		}}
	if early {
		d.title = "The other nodes, started during the check: each healthy"
		d.do = finishEarlyStart
	}
	return d
}

// finishEarlyStart waits for the start begun at the checkpoint, then
// confirms every node with startRest (quick on running, healthy nodes; a
// node that failed or stopped is started again).
func finishEarlyStart(ctx context.Context, env *stepEnv) (string, error) {
	f := env.facts()
	exp := upgradeTarget(f, f.Nodes())
	es := env.rn.takeEarly()
	if es == nil {
		// The process restarted since the checkpoint: start them here.
		return startRest(ctx, env, exp)
	}
	began := time.Now()
	var ready bool // every node was up before continue
	select {
	case <-es.done:
		ready = es.err == nil
	default:
	}
	if err := es.wait(ctx, env.progress); err != nil {
		return "", err
	}
	if ready {
		// Up before continue: one look at each is enough, and traffic
		// goes back without the start's own round of calls.
		err := confirmRest(ctx, env, exp)
		if err == nil {
			return fmt.Sprintf("%s, during the check; all healthy at continue (confirmed in %s)", es.detail, format.Duration(time.Since(began))), nil
		}
		env.progress(fmt.Sprintf("%v: starting them again", err))
	}
	detail, err := startRest(ctx, env, exp)
	if err != nil {
		return "", err
	}
	if es.err != nil {
		return fmt.Sprintf("%s (the start during the check failed: %v; started again after continue)", detail, es.err), nil
	}
	return fmt.Sprintf("%s, started during the check; all healthy %s after continue", es.detail, format.Duration(time.Since(began))), nil
}

// confirmRest checks once that every node other than the first runs,
// answers healthy and runs what exp expects.
func confirmRest(ctx context.Context, env *stepEnv, exp expectation) error {
	first, nodes, err := firstNode(ctx, env)
	if err != nil {
		return err
	}
	var rest []ports.Node
	for _, n := range nodes {
		if n.Name != first.Name {
			rest = append(rest, n)
		}
	}
	return together(ctx, 0, names(rest), func(i int) error {
		n := rest[i]
		if !n.Running() {
			return fmt.Errorf("%s is not running", n.Name)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := env.c.App.WaitHealthy(cctx, n, func(string) {}); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		got, err := env.c.App.Version(cctx, n)
		switch {
		case err != nil:
			return fmt.Errorf("%s: read version: %w", n.Name, err)
		case exp.version != "" && got != exp.version:
			return fmt.Errorf("%s reports version %s, expected %s", n.Name, got, exp.version)
		case exp.digests[n.Name] != "" && n.Digest != "" && n.Digest != exp.digests[n.Name]:
			return fmt.Errorf("%s runs image %s, expected %s", n.Name, n.Digest, exp.digests[n.Name])
		}
		return nil
	})
}

func names(nodes []ports.Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out
}

// earlyStart is a checkpoint's work running beside the runner.
type earlyStart struct {
	step     int
	cancel   context.CancelFunc
	done     chan struct{}
	progress chan string // lines for the runner to publish; dropped when full
	detail   string      // set before done closes
	err      error
	reported bool // its end was published at the checkpoint
}

// wait waits until the work ends, passing its progress lines to report;
// when ctx ends first it stops the work and returns ctx's error.
func (es *earlyStart) wait(ctx context.Context, report func(string)) error {
	for {
		select {
		case msg := <-es.progress:
			report(msg)
		case <-es.done:
			return nil
		case <-ctx.Done():
			es.cancel()
			<-es.done
			return ctx.Err()
		}
	}
}

// beginEarly starts the open checkpoint's meanwhile work, once.
func (rn *runner) beginEarly(ctx context.Context, cp *store.Checkpoint) {
	if rn.early != nil || cp.Step >= len(rn.run.Steps) {
		return
	}
	d := rn.def(cp.Step)
	if d.meanwhile == nil || cp.Kind != d.checkpoint {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, rn.c.StepTimeout)
	es := &earlyStart{step: cp.Step, cancel: cancel, done: make(chan struct{}), progress: make(chan string, 64)}
	env := &stepEnv{rn: rn, c: rn.c, step: cp.Step, report: func(msg string) {
		select {
		case es.progress <- msg:
		default:
		}
	}}
	rn.early = es
	go func() {
		defer close(es.done)
		defer cancel()
		es.detail, es.err = d.meanwhile(wctx, env)
	}()
}

// stopEarly stops the meanwhile work, if any, and waits until it ends.
func (rn *runner) stopEarly() {
	if es := rn.early; es != nil {
		rn.early = nil
		es.cancel()
		<-es.done
	}
}

// takeEarly hands the meanwhile work to the step after its checkpoint.
func (rn *runner) takeEarly() *earlyStart {
	es := rn.early
	rn.early = nil
	return es
}

// earlyEvents are the meanwhile work's channels for await's select; nil
// (never ready) without one or once it ended.
func (rn *runner) earlyEvents() (<-chan string, <-chan struct{}) {
	if rn.early == nil || rn.early.reported {
		return nil, nil
	}
	return rn.early.progress, rn.early.done
}

// earlyProgress publishes a line of the meanwhile work on its checkpoint.
func (rn *runner) earlyProgress(msg string) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.run.Steps[rn.early.step].Progress = msg
	rn.e.publish(events.StepProgress, rn.run, rn.early.step, msg, nil)
}

// earlyEnded says at the checkpoint how the meanwhile work ended; a
// failure leaves the nodes for continue to start again.
func (rn *runner) earlyEnded() {
	es := rn.early
	es.reported = true
	for len(es.progress) > 0 {
		rn.earlyProgress(<-es.progress)
	}
	if es.err != nil {
		rn.earlyProgress(fmt.Sprintf("the other nodes did not all start: %v. Continue starts them again; roll back or abort stops them.", es.err))
		return
	}
	rn.earlyProgress(fmt.Sprintf("%s: continue sends traffic back at once", es.detail))
}

// undoEarly, on an abort at a checkpoint whose meanwhile work may have
// run (in this process or before a restart), undoes it: the others are
// stopped, as an abort without the option leaves them.
func (rn *runner) undoEarly(ctx context.Context, cp *store.Checkpoint) {
	rn.stopEarly()
	if cp == nil || cp.Step >= len(rn.run.Steps) {
		return
	}
	d := rn.def(cp.Step)
	if d.undoMeanwhile == nil || cp.Kind != d.checkpoint {
		return
	}
	uctx, cancel := context.WithTimeout(ctx, rn.c.StepTimeout)
	defer cancel()
	env := &stepEnv{rn: rn, c: rn.c, step: cp.Step}
	detail, err := d.undoMeanwhile(uctx, env)
	if err != nil {
		rn.e.log.Warn().Err(err).Str("run", rn.run.ID).Msg("abort: could not stop the nodes started during the check")
		env.progress(fmt.Sprintf("could not stop the nodes started during the check: %v", err))
		return
	}
	env.progress("abort: " + detail + " (started during the check)")
}
