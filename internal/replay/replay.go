// Package replay remembers nonces for a while so that a second use of one
// can be refused, holding at most a fixed number.
package replay

import (
	"errors"
	"sync"
	"time"
)

// Cache remembers keys (nonces) for a while, to refuse a second use. It
// holds at most max keys; expired ones are swept at most every sweepEvery.
type Cache[K comparable] struct {
	max int
	ttl time.Duration

	mu   sync.Mutex // guards seen and next
	seen map[K]time.Time
	next time.Time
}

// New remembers up to max keys, each for ttl.
func New[K comparable](max int, ttl time.Duration) *Cache[K] {
	return &Cache[K]{max: max, ttl: ttl, seen: map[K]time.Time{}}
}

// Errors from Add.
var (
	ErrReplayed = errors.New("already seen (replayed)")
	ErrFull     = errors.New("too many recent nonces; try again")
)

// Add records k at now. It returns ErrReplayed if k is remembered, and
// ErrFull if the cache is full of live keys.
func (r *Cache[K]) Add(k K, now time.Time) error {
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
		return ErrFull
	}
	r.seen[k] = now.Add(r.ttl)
	return nil
}

// Len is how many keys are remembered.
func (r *Cache[K]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}
