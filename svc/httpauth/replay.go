package httpauth

import (
	"sync"
	"time"
)

// Replay remembers keys (nonces) for a while, to refuse a second use. It
// holds at most max keys; expired ones are swept at most every sweepEvery.
type Replay[K comparable] struct {
	max int
	ttl time.Duration

	mu   sync.Mutex // guards seen and next
	seen map[K]time.Time
	next time.Time
}

// NewReplay remembers up to max keys, each for ttl.
func NewReplay[K comparable](max int, ttl time.Duration) *Replay[K] {
	return &Replay[K]{max: max, ttl: ttl, seen: map[K]time.Time{}}
}

// Add records k at now. It returns ErrReplayed if k is remembered, and
// ErrBusy if the cache is full of live keys.
func (r *Replay[K]) Add(k K, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.After(r.next) {
		for key, exp := range r.seen {
			if now.After(exp) {
				delete(r.seen, key)
			}
		}
		r.next = now.Add(r.ttl / 8)
	}
	if exp, dup := r.seen[k]; dup && !now.After(exp) {
		return ErrReplayed
	}
	if len(r.seen) >= r.max {
		return ErrBusy
	}
	r.seen[k] = now.Add(r.ttl)
	return nil
}

// Len is how many keys are remembered.
func (r *Replay[K]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}
