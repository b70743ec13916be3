package backup

import (
	"context"
	"strings"
	"testing"
)

// The plan shown before an upgrade is asked while the nodes still run:
// their sessions must not turn the backup taken after they stop into a
// dump, while a user without CREATEDB still gets one.
func TestPlanKindLooksPastTheNodesSessions(t *testing.T) {
	f := copyFixture(t, 2, 10)
	o := f.localOptions(t)
	o.NoCopy = false
	m, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	busy := connect(t, f.dbURL)
	defer busy.Close(ctx)
	if kind, why := m.PlanKind(ctx, false); kind != KindDump {
		t.Errorf("now, with a node's session: %s (%s), want a dump", kind, why)
	}
	if kind, why := m.PlanKind(ctx, true); kind != KindCopy {
		t.Errorf("once the nodes are stopped: %s (%s), want a copy", kind, why)
	}
	o.NoCopy = true
	m2, err := New(o, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if kind, why := m2.PlanKind(ctx, true); kind != KindDump || !strings.Contains(why, "copies are turned off") ||
		!strings.Contains(why, "written uncompressed where there is room") {
		t.Errorf("copies turned off: %s (%s), want a dump with its reason and how it is written", kind, why)
	}
}
