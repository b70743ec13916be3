package procedures_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/store"
)

// A switch of traffic by hand takes the cluster's lock like a run: a run
// asked for while the balancer switches is refused as busy (naming the
// switch), and the cluster is free once it is done. A failed switch
// frees it too, recorded as aborted with the reason.
func TestTrafficByHandHoldsTheCluster(t *testing.T) {
	h := newHarness(t, cluster3())
	ctx := context.Background()
	blk := h.world.BlockOn("lb maintenance")
	type result struct {
		sw  procedures.TrafficSwitch
		err error
	}
	done := make(chan result, 1)
	go func() {
		sw, err := h.eng.SetTraffic(ctx, "prod", ports.LBMaintenance, "U1", "test")
		done <- result{sw, err}
	}()
	select {
	case <-blk.Reached:
	case <-time.After(5 * time.Second):
		t.Fatal("the switch never began")
	}
	_, err := h.eng.Start(ctx, procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Version: "1.7.14", Requester: "U2"})
	var busy *procedures.BusyError
	if !errors.As(err, &busy) || busy.Run.Procedure != "traffic" || procedures.Title(busy.Run) != "switch of traffic off on prod by hand" {
		t.Fatalf("a run started during the switch: %v", err)
	}
	if _, err := h.eng.SetTraffic(ctx, "prod", ports.LBNormal, "U3", "test"); !errors.Is(err, store.ErrClusterBusy) {
		t.Fatalf("a second switch during the first: %v", err)
	}
	blk.Release()
	res := <-done
	if res.err != nil || res.sw.Mode != ports.LBMaintenance || res.sw.RunID == "" {
		t.Fatalf("switch: %+v, %v", res.sw, res.err)
	}
	run, err := h.store.GetRun(ctx, res.sw.RunID)
	if err != nil || run.State != store.StateSucceeded || run.Requester != "U1" {
		t.Fatalf("the switch's record: %+v, %v", run, err)
	}

	h.world.Fail("lb normal", 1)
	sw, err := h.eng.SetTraffic(ctx, "prod", ports.LBNormal, "U1", "test")
	if err == nil {
		t.Fatal("the failed switch reported no error")
	}
	if run, _ := h.store.GetRun(ctx, sw.RunID); run.State != store.StateAborted || run.Error == "" {
		t.Fatalf("the failed switch's record: %+v (%v)", run, err)
	}
	h.startRun(upgrade()) // the cluster is free
}
