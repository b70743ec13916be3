package demo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nocobot/nocobot/bot/terminal"
	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/schedule"

	"github.com/nocobot/nocobot/bot"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// errInterrupted: Ctrl-C before the window's run began; nothing ran.
var errInterrupted = errors.New("interrupted by Ctrl-C before the window opened")

// shiftedClock is the wall clock moved by offset: the demo's scheduler
// lives a few seconds before the window opens.
type shiftedClock struct{ offset time.Duration }

func (c shiftedClock) Now() time.Time                         { return time.Now().Add(c.offset) }
func (c shiftedClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// nextSaturday2AM is the next Saturday 02:00 UTC after t.
func nextSaturday2AM(t time.Time) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 2, 0, 0, 0, time.UTC)
	for d.Weekday() != time.Saturday || !d.After(t) {
		d = d.AddDate(0, 0, 1)
	}
	return d
}

// attachedDispatcher and attachedEngine are how the terminal front
// follows a run someone else started (here the scheduler): CommandWords hands over
// that run, and Subscribe a subscription taken before it started, so no
// event is lost.
type attachedDispatcher struct {
	terminal.Dispatcher
	run store.Run
}

func (a attachedDispatcher) CommandWords(context.Context, bot.Caller, []string, string) bot.Reply {
	return bot.Reply{RunID: a.run.ID, Started: true}
}

type attachedEngine struct {
	*procedures.Engine
	sub *events.Subscription
}

func (a attachedEngine) Subscribe() *events.Subscription { return a.sub }

// window adds a maintenance window that opens in a few seconds, runs the
// real scheduler until the window starts its run, and follows that run
// with the terminal front.
func (p *player) window(ctx context.Context, sc scene) (terminal.End, error) {
	now := time.Now()
	clock := shiftedClock{offset: nextSaturday2AM(now).Add(-8 * time.Second).Sub(now)}
	sched, err := schedule.New(schedule.Options{
		Store: p.st, Log: p.o.Log, Clock: clock, Events: p.bus,
		Parse: bot.ParseProcedure, Start: p.eng.Start,
	})
	if err != nil {
		return terminal.End{}, err
	}
	runSub := p.eng.Subscribe() // handed to the front: holds the run's first events
	winSub := p.eng.Subscribe()
	defer winSub.Close()
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	schedDone := make(chan error, 1)
	go func() { schedDone <- sched.Run(sctx) }()
	defer func() { stop(); <-schedDone }()

	w, next, err := sched.Add(ctx, store.Window{ID: "weekly-backup", Cluster: cluster, Spec: "0 2 * * 6", TZ: "UTC",
		Command: sc.command, Duration: time.Hour, Announce: 30 * time.Minute, CreatedBy: "terminal:demo"})
	if err != nil {
		runSub.Close()
		return terminal.End{}, err
	}
	fmt.Fprintf(p.o.Out, "\nWindow %s added: %s, next starts %s (scheduler clock now %s).\n", w.ID, w.Command,
		next[0].Format("Mon 2006-01-02 15:04 MST"), clock.Now().UTC().Format("Mon 15:04:05"))
	deadline := time.After(time.Minute)
	for {
		select {
		case <-ctx.Done():
			runSub.Close()
			return terminal.End{}, ctx.Err()
		case <-p.o.Interrupts:
			runSub.Close()
			return terminal.End{}, errInterrupted
		case <-deadline:
			runSub.Close()
			return terminal.End{}, errors.New("the window did not open within a minute")
		case ev := <-winSub.C:
			if ev.Window == nil {
				continue
			}
			fmt.Fprintf(p.o.Out, "[%s] window: %s\n", ev.At.Format("15:04:05"), ev.Message)
			switch ev.Kind {
			case events.WindowStarted:
				return p.follow(ctx, sc, attachedDispatcher{Dispatcher: p.disp, run: ev.Run},
					attachedEngine{Engine: p.eng, sub: runSub}, nil, "")
			case events.WindowSkipped:
				runSub.Close()
				return terminal.End{}, errors.New("the window was skipped: " + ev.Message)
			}
		}
	}
}
