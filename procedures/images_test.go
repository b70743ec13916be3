package procedures_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/nocobot/nocobot/procedures"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

// upgradeTo runs an upgrade to req through its verify checkpoint and
// returns the finished run.
func (h *harness) upgradeThrough(req procedures.Request, at store.Action) store.Run {
	h.t.Helper()
	req.Procedure = procedures.ProcUpgrade
	h.startRun(req)
	h.decide(h.waitCheckpoint("verify"), at, "U2")
	return h.waitFinished()
}

func pulled(acts []string) []string {
	var out []string
	for _, a := range acts {
		if s, ok := strings.CutPrefix(a, "pull "); ok {
			out = append(out, s)
		}
	}
	return out
}

// A -full tag is packaging: the node reports the version part only.
func TestUpgradeFullTagVerifiesVersionPart(t *testing.T) {
	h := newHarness(t, cluster3())
	end := h.upgradeThrough(procedures.Request{Version: "1.7.14-full"}, store.ActionContinue)
	if end.State != store.StateSucceeded || h.world.NodeState("app-3") != "running nocobase/nocobase:1.7.14-full" {
		t.Fatalf("state %s (%s), app-3 %s", end.State, end.Error, h.world.NodeState("app-3"))
	}
	checkSafe(t, h.world)
}

// tag_suffix -full forms 1.7.14-full from 1.7.14 and keeps 1.7.14-full.
func TestTagSuffixNeverDoubles(t *testing.T) {
	for _, v := range []string{"1.7.14", "1.7.14-full"} {
		t.Run(v, func(t *testing.T) {
			h := newHarnessWith(t, cluster3(), func(c *procedures.Cluster) { c.TagSuffix = "-full" })
			end := h.upgradeThrough(procedures.Request{Version: v}, store.ActionContinue)
			if got := pulled(h.world.Actions()); !slices.Equal(got, []string{"nocobase/nocobase:1.7.14-full"}) || end.State != store.StateSucceeded {
				t.Fatalf("pulled %q, state %s (%s)", got, end.State, end.Error)
			}
		})
	}
}

// latest resolves to a digest at preflight, is verified by it, and the
// version the node reports is recorded; a roll-back goes back to the
// digest the nodes ran although the tag has moved.
func TestUpgradeFloatingTag(t *testing.T) {
	const latest = "nocobase/nocobase:latest"
	for _, at := range []store.Action{store.ActionContinue, store.ActionRollback} {
		t.Run(string(at), func(t *testing.T) {
			w := proctest.NewWorldOf(latest, "1.7.13", true, "app-1", "app-2")
			before := w.Digest("app-1")
			w.Publish(latest, "1.7.14", false)
			h := newHarness(t, w)
			h.startRun(procedures.Request{Procedure: procedures.ProcUpgrade, Version: "latest"})
			verify := h.waitCheckpoint("verify")
			if !strings.Contains(verify.Checkpoint.Question, "prod runs 1.7.14 on one node (nocobase/nocobase:latest)") {
				t.Fatalf("verify question does not say the version the node reports: %q", verify.Checkpoint.Question)
			}
			after := w.Digest("app-1")
			if after == before {
				t.Fatal("app-1 still runs the old digest")
			}
			h.decide(verify, at, "U2")
			end := h.waitFinished()
			f := procedures.FactsOf(end)
			if f.ToVersion() != "1.7.14" || f.TargetDigest() != after {
				t.Fatalf("recorded to-version %q, target digest %q (want %s)", f.ToVersion(), f.TargetDigest(), after)
			}
			want, digest, db := store.StateSucceeded, after, "1.7.14"
			if at == store.ActionRollback {
				want, digest, db = store.StateRolledBack, before, "1.7.13"
			}
			for _, n := range []string{"app-1", "app-2"} {
				if w.Digest(n) != digest {
					t.Errorf("%s runs %s, want %s", n, w.Digest(n), digest)
				}
			}
			if end.State != want || w.DBVersion() != db {
				t.Fatalf("state %s (%s), db %s", end.State, end.Error, w.DBVersion())
			}
			checkSafe(t, w)
		})
	}
}

// Any image reference, its version read from the image's metadata.
func TestUpgradeAnyImage(t *testing.T) {
	const ref = "registry.example.com/team/nocobase:2026-11-30"
	w := cluster3()
	w.Publish(ref, "1.7.14", true)
	h := newHarness(t, w)
	p, err := h.eng.Plan(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Image: ref, Requester: "U1"})
	if err != nil || !strings.Contains(p, "New image: "+ref+" (NocoBase unknown until it starts") {
		t.Fatalf("plan %q: %v", p, err)
	}
	end := h.upgradeThrough(procedures.Request{Image: ref}, store.ActionContinue)
	if end.State != store.StateSucceeded || w.NodeState("app-2") != "running "+ref || w.DBVersion() != "1.7.14" {
		t.Fatalf("state %s (%s), app-2 %s", end.State, end.Error, w.NodeState("app-2"))
	}
	if !strings.Contains(procedures.Title(end), ref) {
		t.Fatalf("title %q does not name the image", procedures.Title(end))
	}
	// Now the engine has the image: the plan reads its metadata.
	p, err = h.eng.Plan(context.Background(), procedures.Request{Cluster: "prod", Procedure: procedures.ProcUpgrade, Image: ref, Requester: "U1"})
	if err != nil || !strings.Contains(p, "(NocoBase 1.7.14 by its metadata)") {
		t.Fatalf("plan %q: %v", p, err)
	}
}

// Another image of the version the cluster runs: refused unless asked
// for, and then done.
func TestSameVersionImageOnlyWhenAsked(t *testing.T) {
	const full = "nocobase/nocobase:1.7.14-full"
	w := proctest.NewWorld(newImage, true, "app-1", "app-2")
	w.Publish(full, "1.7.14", true)
	h := newHarness(t, w)
	h.startRun(procedures.Request{Procedure: procedures.ProcUpgrade, Version: "1.7.14-full"})
	cp := h.waitCheckpoint("failure")
	if !strings.Contains(cp.Checkpoint.Question, "--same-version") || !slices.Equal(cp.Checkpoint.Options, []store.Action{store.ActionAbort}) {
		t.Fatalf("question %q, options %v", cp.Checkpoint.Question, cp.Checkpoint.Options)
	}
	h.decide(cp, store.ActionAbort, "U1")
	h.waitFinished()

	end := h.upgradeThrough(procedures.Request{Version: "1.7.14-full", SameVersion: true}, store.ActionContinue)
	if end.State != store.StateSucceeded || w.NodeState("app-2") != "running "+full {
		t.Fatalf("state %s (%s), app-2 %s", end.State, end.Error, w.NodeState("app-2"))
	}
}

func TestParseUpgradeWords(t *testing.T) {
	ok := map[string]string{
		"upgrade 1.7.14":                          "v=1.7.14 i= c= same=false",
		"upgrade latest prod":                     "v=latest i= c=prod same=false",
		"upgrade latest-full":                     "v=latest-full i= c= same=false",
		"upgrade 1.7.14-full --same-version prod": "v=1.7.14-full i= c=prod same=true",
		"upgrade --image registry.example.com:5000/team/nocobase:2026-11-30 prod": "v= i=registry.example.com:5000/team/nocobase:2026-11-30 c=prod same=false",
	}
	for in, want := range ok {
		r, err := procedures.ParseCommand(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := "v=" + r.Version + " i=" + r.Image + " c=" + r.Cluster + " same=" + map[bool]string{true: "true", false: "false"}[r.SameVersion]; got != want {
			t.Errorf("%s: got %s, want %s", in, got, want)
		}
	}
	for in, msg := range map[string]string{
		"upgrade":                      "which version?",
		"upgrade newest":               "not a NocoBase version or tag",
		"upgrade --image":              "--image needs an image reference",
		"upgrade --image 'a b'":        "not an image reference",
		"upgrade 1.7.14 --image x/y:1": "not both",
		"upgrade 1.7.14 prod extra":    "too many arguments: extra",
	} {
		if _, err := procedures.ParseCommand(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v, want an error containing %q", in, err, msg)
		}
	}
}

// An image built for another platform than the engine's stops the
// upgrade at preflight, before the 503 page and before any node stops,
// with a question that names both platforms.
func TestUpgradeToAnotherPlatformStopsAtPreflight(t *testing.T) {
	h := newHarness(t, cluster3())
	h.world.BuiltFor("nocobase/nocobase:1.7.14", "linux/arm64")
	h.startRun(upgrade())
	cp := h.waitCheckpoint("failure")
	if q := cp.Checkpoint.Question; !strings.Contains(q, "built for linux/arm64") || !strings.Contains(q, "engine runs linux/amd64") ||
		cp.Steps[cp.Current].Name != "preflight" {
		t.Fatalf("step %s, question %q", cp.Steps[cp.Current].Name, q)
	}
	for _, a := range h.world.Actions() {
		if strings.HasPrefix(a, "lb") || strings.HasPrefix(a, "stop") || strings.HasPrefix(a, "set-image") {
			t.Fatalf("downtime began: %q", h.world.Actions())
		}
	}
	if got := h.world.NodeState("app-1"); !strings.HasPrefix(got, "running") {
		t.Errorf("app-1 %s", got)
	}
}
