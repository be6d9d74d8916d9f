//go:build race

package ratelimit

// raceEnabled shortens the statistical tests, which check figures rather
// than concurrency, when the race detector slows them tenfold.
const raceEnabled = true
