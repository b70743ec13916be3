package format

import (
	"testing"
	"time"
)

func TestFormats(t *testing.T) {
	sat := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	tests := []struct{ got, want string }{
		{Bytes(0), "0 B"},
		{Bytes(1023), "1023 B"},
		{Bytes(1536), "1.5 KiB"},
		{Bytes(5 << 20), "5.0 MiB"},
		{Bytes(3 << 40), "3.0 TiB"},
		{Duration(12300 * time.Millisecond), "12.3 s"},
		{Duration(4*time.Minute + 5*time.Second), "4 min 05 s"},
		{Duration(2*time.Hour + 3*time.Minute), "2 h 03 min"},
		{Duration(-time.Second), "0.0 s"},
		{Elapsed(40*time.Second + 900*time.Millisecond), "40 s"},
		{Elapsed(3*time.Minute + 12*time.Second), "3 min 12 s"},
		{Age(12 * time.Minute), "12 min"},
		{Age(5 * time.Hour), "5 h"},
		{Age(72 * time.Hour), "3 days"},
		{When(sat, "Europe/Berlin"), "Sat 5 Dec 02:00 CET"},
		{When(sat, ""), "Sat 5 Dec 01:00 UTC"},
		{When(sat, "Mars/Olympus"), "Sat 5 Dec 01:00 UTC"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
