// Package format writes sizes, durations, ages and times the way every
// nocobot front shows them to people.
package format

import (
	"fmt"
	"time"
)

// Bytes is a size in binary units: "512 B", "1.5 KiB", "2.0 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Duration is how long something took: "12.3 s", "4 min 05 s",
// "2 h 03 min". A negative duration counts as none.
func Duration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
}

// Elapsed is a running time in whole seconds: "40 s", "3 min 12 s".
func Elapsed(d time.Duration) string {
	d = max(d, 0)
	if d < time.Minute {
		return fmt.Sprintf("%d s", int(d.Seconds()))
	}
	return Duration(d)
}

// Age is how long ago, coarsely: "12 min", "5 h", "3 days".
func Age(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// When is a moment in a time zone (UTC when tz is empty or unknown):
// "Sat 5 Dec 02:00 CET".
func When(t time.Time, tz string) string {
	if loc, err := time.LoadLocation(tz); err == nil && tz != "" {
		t = t.In(loc)
	} else {
		t = t.UTC()
	}
	return t.Format("Mon 2 Jan 15:04 MST")
}

// ParseDuration reads a duration as people write it: Go's units (90s,
// 10m, 2h30m) plus d for days and w for weeks (1d, 2w, 1w3d12h). A day
// is 24 hours here: these are spans to look back over, not calendar days.
func ParseDuration(s string) (time.Duration, error) {
	orig := s
	if s == "" {
		return 0, fmt.Errorf("an empty duration: expected e.g. 90s, 10m, 2h, 1d or 2w")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 || i == len(s) || (s[i] != 'd' && s[i] != 'w') {
			// The rest is Go's own syntax (or a mistake it words).
			d, err := time.ParseDuration(s)
			if err != nil {
				return 0, fmt.Errorf("%q is not a duration: expected e.g. 90s, 10m, 2h, 1d or 2w", orig)
			}
			return total + d, nil
		}
		var n float64
		if _, err := fmt.Sscan(s[:i], &n); err != nil {
			return 0, fmt.Errorf("%q is not a duration: expected e.g. 90s, 10m, 2h, 1d or 2w", orig)
		}
		unit := 24 * time.Hour
		if s[i] == 'w' {
			unit *= 7
		}
		total += time.Duration(n * float64(unit))
		s = s[i+1:]
	}
	return total, nil
}
