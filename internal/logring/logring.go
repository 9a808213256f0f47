// Package logring keeps the last lines of a log in memory and lets readers
// follow it: an app's output, a visor's own log. A follower that falls
// further behind than the ring holds is told how many lines it missed;
// nothing blocks the writer.
package logring

import (
	"bytes"
	"context"
	"fmt"
	"sync"
)

// Ring is the last lines of a log. Its methods are safe for concurrent use.
type Ring struct {
	mu    sync.Mutex // guards lines, total, wake
	lines []string   // lines[i % len] is line number i
	total uint64     // lines ever added
	wake  chan struct{}
}

// New returns a ring that keeps n lines.
func New(n int) *Ring {
	return &Ring{lines: make([]string, max(n, 1)), wake: make(chan struct{})}
}

// Add appends a line, waking every follower.
func (r *Ring) Add(line string) {
	r.mu.Lock()
	r.lines[r.total%uint64(len(r.lines))] = line
	r.total++
	close(r.wake)
	r.wake = make(chan struct{})
	r.mu.Unlock()
}

// Last returns up to the last n lines, oldest first.
func (r *Ring) Last(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.total - min(uint64(max(n, 0)), r.kept())
	return r.copyLocked(from)
}

func (r *Ring) kept() uint64 { return min(r.total, uint64(len(r.lines))) }

// copyLocked returns lines from..total.
func (r *Ring) copyLocked(from uint64) []string {
	out := make([]string, 0, r.total-from)
	for i := from; i < r.total; i++ {
		out = append(out, r.lines[i%uint64(len(r.lines))])
	}
	return out
}

// Follow calls fn with the last n lines, then with every line added, until
// ctx ends (it returns nil) or fn fails (it returns fn's error). A follower
// that falls behind by more than the ring holds gets a line saying how
// many it missed, then goes on from the oldest line kept.
func (r *Ring) Follow(ctx context.Context, n int, fn func(line string) error) error {
	r.mu.Lock()
	next := r.total - min(uint64(max(n, 0)), r.kept())
	r.mu.Unlock()
	for {
		r.mu.Lock()
		var skipped uint64
		if oldest := r.total - r.kept(); next < oldest {
			skipped, next = oldest-next, oldest
		}
		batch := r.copyLocked(next)
		next = r.total
		wake := r.wake
		r.mu.Unlock()
		if skipped > 0 {
			if err := fn(fmt.Sprintf("… %d lines skipped (this reader fell behind)", skipped)); err != nil {
				return err
			}
		}
		for _, line := range batch {
			if err := fn(line); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
	}
}

// Writer adds what is written to the ring, a line per '\n' (a zap core's
// sink, say). A line without its '\n' waits for the rest.
type Writer struct {
	r *Ring

	mu      sync.Mutex // guards partial
	partial []byte
}

// NewWriter returns a writer into r.
func NewWriter(r *Ring) *Writer { return &Writer{r: r} }

func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			break
		}
		line := append(w.partial, p[:i]...)
		w.partial = w.partial[:0]
		w.r.Add(string(line))
		p = p[i+1:]
	}
	return n, nil
}

// Sync implements zapcore.WriteSyncer.
func (w *Writer) Sync() error { return nil }
