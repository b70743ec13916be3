package window

import (
	"strings"
	"testing"
	"time"
)

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// nextStarts lists n starts after from.
func nextStarts(t *testing.T, spec, tz string, from time.Time, n int) []string {
	t.Helper()
	sched, loc, err := ParseSpec(spec, tz)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for at := from; len(out) < n; {
		at = sched.Next(at)
		out = append(out, at.In(loc).Format("2006-01-02 15:04 MST"))
	}
	return out
}

func equalStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// Daylight saving in Europe/Berlin, 2026: clocks spring forward on Sunday
// 29 March at 02:00 (to 03:00 CEST) and fall back on Sunday 25 October at
// 03:00 (to 02:00 CET).
func TestWindowSpecDaylightSaving(t *testing.T) {
	loc := berlin(t)
	// Spring forward: 02:30 does not exist on 29 March. robfig/cron alone
	// drops that day's window; ours opens at the change, 03:00 CEST.
	equalStrings(t, "daily 02:30 over spring forward",
		nextStarts(t, "30 2 * * *", "Europe/Berlin", time.Date(2026, 3, 27, 12, 0, 0, 0, loc), 4),
		[]string{"2026-03-28 02:30 CET", "2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST", "2026-03-31 02:30 CEST"})
	// A weekly Sunday window would otherwise vanish for two weeks.
	equalStrings(t, "Sundays 02:30 over spring forward",
		nextStarts(t, "30 2 * * 0", "Europe/Berlin", time.Date(2026, 3, 23, 0, 0, 0, 0, loc), 2),
		[]string{"2026-03-29 03:00 CEST", "2026-04-05 02:30 CEST"})
	// A time after the gap is unaffected and not doubled.
	equalStrings(t, "daily 03:00 over spring forward",
		nextStarts(t, "0 3 * * *", "Europe/Berlin", time.Date(2026, 3, 28, 12, 0, 0, 0, loc), 2),
		[]string{"2026-03-29 03:00 CEST", "2026-03-30 03:00 CEST"})

	// Fall back: 02:30 happens twice on 25 October. robfig/cron alone opens
	// the window twice, an hour apart; ours opens it once, at the first.
	equalStrings(t, "daily 02:30 over fall back",
		nextStarts(t, "30 2 * * *", "Europe/Berlin", time.Date(2026, 10, 24, 12, 0, 0, 0, loc), 3),
		[]string{"2026-10-25 02:30 CEST", "2026-10-26 02:30 CET", "2026-10-27 02:30 CET"})
	// Asking from inside the repeated hour does not give its second pass.
	secondPass := time.Date(2026, 10, 25, 1, 10, 0, 0, time.UTC) // 02:10 CET
	equalStrings(t, "from inside the repeated hour",
		nextStarts(t, "30 2 * * *", "Europe/Berlin", secondPass, 1),
		[]string{"2026-10-26 02:30 CET"})
	// Every half hour: the repeated hour counts once.
	equalStrings(t, "half-hourly over fall back",
		nextStarts(t, "*/30 * * * *", "Europe/Berlin", time.Date(2026, 10, 25, 1, 45, 0, 0, loc), 4),
		[]string{"2026-10-25 02:00 CEST", "2026-10-25 02:30 CEST", "2026-10-25 03:00 CET", "2026-10-25 03:30 CET"})
	// In UTC nothing moves.
	equalStrings(t, "UTC",
		nextStarts(t, "30 2 * * *", "", time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), 2),
		[]string{"2026-03-29 02:30 UTC", "2026-03-30 02:30 UTC"})
}

func TestParseWindowSpecAccepts(t *testing.T) {
	from := time.Date(2026, 6, 3, 10, 0, 0, 0, time.UTC) // a Wednesday
	equalStrings(t, "@weekly", nextStarts(t, "@weekly", "Europe/Berlin", from, 2),
		[]string{"2026-06-07 00:00 CEST", "2026-06-14 00:00 CEST"})
	equalStrings(t, "Saturday 02:00", nextStarts(t, " 0 2 * * sat ", "Europe/Berlin", from, 3),
		[]string{"2026-06-06 02:00 CEST", "2026-06-13 02:00 CEST", "2026-06-20 02:00 CEST"})
	equalStrings(t, "@every 6h", nextStarts(t, "@every 6h", "UTC", from, 2),
		[]string{"2026-06-03 16:00 UTC", "2026-06-03 22:00 UTC"})
	equalStrings(t, "29 February", nextStarts(t, "0 0 29 2 *", "UTC", from, 1),
		[]string{"2028-02-29 00:00 UTC"})
}

func TestParseWindowSpecRefuses(t *testing.T) {
	for _, c := range []struct{ spec, tz, want string }{
		{"61 * * * *", "", "end of range (61) above maximum (59)"},
		{"* * * *", "", "expected exactly 5 fields"},
		{"0 0 * * * *", "", "expected exactly 5 fields"},
		{"", "", "empty cron expression"},
		{"   ", "", "empty cron expression"},
		{"@fortnightly", "", "unrecognized descriptor"},
		{"@every 10s", "", "at least 1m apart"},
		{"@every", "", "invalid cron expression"},
		{"0 0 30 2 *", "", "never matches a date"},
		{"TZ=UTC", "", "--tz"},
		{"CRON_TZ=Europe/Berlin 0 2 * * *", "", "--tz"},
		{"0 2 * * mon-fri/0", "", "step of range should be a positive number"},
		{"0 2 * * 6", "Mars/Olympus", `"Mars/Olympus" is not a time zone`},
		{"0 2 * * 6", "Local", "ambiguous"},
		{"0 2 * * 6", "../../etc/passwd", "not a time zone"},
		{strings.Repeat("1,", 150) + "1 * * * *", "", "too long"},
	} {
		_, _, err := ParseSpec(c.spec, c.tz)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSpec(%q, %q) = %v, want an error with %q", c.spec, c.tz, err, c.want)
		}
	}
}
