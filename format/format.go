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
