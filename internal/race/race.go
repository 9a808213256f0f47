//go:build race

// Package race reports whether the race detector is on, so that tests that
// count allocations (which the detector adds) can skip under -race.
package race

// Enabled is true in -race builds.
const Enabled = true
