package window

import (
	"strings"
	"testing"
	"time"
)

// FuzzParseWindowSpec: whatever a person types, the parser neither panics
// nor hangs; a refusal is one clear line that says it is about the
// expression or the zone; an accepted expression gives increasing starts.
func FuzzParseWindowSpec(f *testing.F) {
	for _, s := range []string{
		"0 2 * * 6", "@weekly", "@every 90m", "*/15 1-5 1,15 jan-jun mon-fri", "61 * * * *",
		"TZ=UTC", "TZ=", "CRON_TZ=x 0 0 * * *", "@every -1s", "0 0 30 2 *", "? ? ? ? ?",
		"1-2-3 * * * *", "*/0 * * * *", "0/99999999999999999999 * * * *", "@", "", "\x00",
		"@\n0", // found by fuzzing: the parser's reason echoed a newline
	} {
		f.Add(s, "Europe/Berlin")
	}
	f.Add("30 2 * * *", "")
	f.Add("0 0 * * *", "Australia/Lord_Howe") // 30-minute daylight-saving shift
	f.Add("* * * * *", "Antarctica/Troll")    // two-hour shift
	f.Add("0 2 * * *", "Local")
	ref := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec, tz string) {
		sched, loc, err := ParseSpec(spec, tz)
		if err != nil {
			msg := err.Error()
			if msg == "" || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("unclear error for %q %q: %q", spec, tz, msg)
			}
			if !strings.Contains(msg, "cron expression") && !strings.Contains(msg, "time zone") {
				t.Fatalf("error for %q %q does not say what is wrong: %q", spec, tz, msg)
			}
			return
		}
		if sched == nil || loc == nil {
			t.Fatalf("%q %q: accepted without a schedule or zone", spec, tz)
		}
		at := ref
		for i := range 5 {
			n := sched.Next(at)
			if i == 0 && n.IsZero() {
				t.Fatalf("%q %q: accepted but never starts after %s", spec, tz, ref)
			}
			if n.IsZero() {
				break
			}
			if !n.After(at) {
				t.Fatalf("%q %q: start %s is not after %s", spec, tz, n, at)
			}
			at = n
		}
	})
}
