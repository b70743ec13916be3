package procedures

import (
	"crypto/rand"
	"time"
)

const runIDAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// randomID draws n characters that cannot be mistaken for each other.
func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		// 31 letters: the bias of a byte modulo 31 is below 1 %.
		b[i] = runIDAlphabet[int(b[i])%len(runIDAlphabet)]
	}
	return string(b)
}

// newRunID is short enough to type ("/nocobase cancel r1122-7fq3xk") and
// says roughly when the run began; six random characters make a
// collision among a day's runs unlikely (31^6 ≈ 887 million), and Start
// draws again when one happens.
func newRunID(now time.Time) string {
	return "r" + now.UTC().Format("0102") + "-" + randomID(6)
}
