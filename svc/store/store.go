// Package store is the storage seam of skywire's services: a small key-value
// interface with compare-and-swap and expiry, and its implementations:
// Memory (in this process), Bolt (a bbolt file that survives restarts and
// crashes) and Redis (shared by several instances of a service). A service
// runs on any of them unchanged; Open makes one from a --store spec.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Errors.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict: Swap's old value did not match (someone else wrote first).
	ErrConflict = errors.New("conflicting update")
	// ErrFull: the store holds as many entries as it may.
	ErrFull = errors.New("store is full")
	// ErrTooLarge: a key or value is over MaxKey or MaxValue.
	ErrTooLarge = errors.New("entry too large")
)

// Entry bounds, the same in every store.
const (
	MaxKey   = 512
	MaxValue = 64 << 10
)

// checkEntry bounds a key and a value to be stored.
func checkEntry(key string, value []byte) error {
	if len(key) == 0 || len(key) > MaxKey {
		return fmt.Errorf("%w: a key of %d bytes (1 to %d)", ErrTooLarge, len(key), MaxKey)
	}
	if len(value) > MaxValue {
		return fmt.Errorf("%w: a value of %d bytes (at most %d)", ErrTooLarge, len(value), MaxValue)
	}
	return nil
}

// Store holds byte values under string keys.
type Store interface {
	// Get returns the value of key, or ErrNotFound (also once expired).
	Get(ctx context.Context, key string) ([]byte, error)
	// Swap sets key to new if its value is old (nil old: key must be absent;
	// nil new: delete it), else returns ErrConflict. ttl 0 means no expiry.
	Swap(ctx context.Context, key string, old, new []byte, ttl time.Duration) error
	// Delete removes key if present.
	Delete(ctx context.Context, key string) error
	// Scan calls fn for every live key with the prefix until fn returns
	// false, in no order callers may rely on (Redis has none to give): a
	// caller that shows a list sorts it.
	Scan(ctx context.Context, prefix string, fn func(key string, value []byte) bool) error
}

// Firster is a store shared by several processes that can also remember
// keys for a while, for replay checks that must hold across instances of a
// service (Redis is one; Memory and Bolt, one process each, are not).
type Firster interface {
	// First records key for ttl unless it is recorded, and reports whether
	// it was new.
	First(ctx context.Context, key string, ttl time.Duration) (bool, error)
}

// Putter is a store that sets a key whatever it holds in one step (Redis:
// one round trip instead of Update's read and compare-and-swap).
type Putter interface {
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// Put sets key to value with ttl whatever it held (ErrFull if it is new and
// the store is full).
func Put(ctx context.Context, s Store, key string, value []byte, ttl time.Duration) error {
	if p, ok := s.(Putter); ok {
		return p.Put(ctx, key, value, ttl)
	}
	return Update(ctx, s, key, ttl, func([]byte) ([]byte, error) { return value, nil })
}

// Update applies fn to the value of key (nil if absent) and stores the
// result with ttl, retrying (after a short random wait) if another writer
// got there first. fn returning
// a nil value deletes the key; fn's error aborts.
func Update(ctx context.Context, s Store, key string, ttl time.Duration, fn func(old []byte) ([]byte, error)) error {
	for i := 0; i < 64; i++ {
		if i > 0 { // writers that collided spread out, more the more they collide
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(rand.N(min(time.Millisecond<<min(i, 5), 20*time.Millisecond))):
			}
		}
		old, err := s.Get(ctx, key)
		if errors.Is(err, ErrNotFound) {
			old, err = nil, nil
		}
		if err != nil {
			return err
		}
		next, err := fn(old)
		if err != nil {
			return err
		}
		if old == nil && next == nil {
			return nil
		}
		err = s.Swap(ctx, key, old, next, ttl)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return ErrConflict
}

// Memory is a Store in this process's memory, bounded to MaxEntries.
type Memory struct {
	max int
	now func() time.Time

	mu      sync.RWMutex // guards entries, dirs and nextGC
	entries map[string]memEntry
	// dirs holds each key under every '/'-ended prefix of it ("edge/" and
	// "edge/02ab…/" for "edge/02ab…/id"), so a Scan of such a prefix visits
	// its keys alone, not the whole store.
	dirs   map[string]map[string]struct{}
	nextGC time.Time
}

// eachDir calls fn with every '/'-ended prefix of key.
func eachDir(key string, fn func(dir string)) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			fn(key[:i+1])
		}
	}
}

// addLocked stores e under key, indexing a new key.
func (m *Memory) addLocked(key string, e memEntry) {
	if _, had := m.entries[key]; !had {
		eachDir(key, func(dir string) {
			set := m.dirs[dir]
			if set == nil {
				set = map[string]struct{}{}
				m.dirs[dir] = set
			}
			set[key] = struct{}{}
		})
	}
	m.entries[key] = e
}

// deleteLocked removes key and its index entries.
func (m *Memory) deleteLocked(key string) {
	if _, had := m.entries[key]; !had {
		return
	}
	delete(m.entries, key)
	eachDir(key, func(dir string) {
		if set := m.dirs[dir]; set != nil {
			delete(set, key)
			if len(set) == 0 {
				delete(m.dirs, dir)
			}
		}
	})
}

type memEntry struct {
	value   []byte
	expires time.Time // zero: never
}

// NewMemory returns an empty store holding at most max entries.
func NewMemory(max int) *Memory {
	return &Memory{max: max, now: time.Now, entries: map[string]memEntry{}, dirs: map[string]map[string]struct{}{}}
}

func (m *Memory) live(e memEntry, now time.Time) bool {
	return e.expires.IsZero() || now.Before(e.expires)
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.entries[key]
	if !ok || !m.live(e, m.now()) {
		return nil, ErrNotFound
	}
	return bytes.Clone(e.value), nil
}

// Swap implements Store.
func (m *Memory) Swap(_ context.Context, key string, old, new []byte, ttl time.Duration) error {
	if err := checkEntry(key, new); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.gcLocked(now)
	e, ok := m.entries[key]
	ok = ok && m.live(e, now)
	switch {
	case old == nil && ok, old != nil && (!ok || !bytes.Equal(e.value, old)):
		return ErrConflict
	}
	if new == nil {
		m.deleteLocked(key)
		return nil
	}
	if !ok && len(m.entries) >= m.max {
		return ErrFull
	}
	ne := memEntry{value: bytes.Clone(new)}
	if ttl > 0 {
		ne.expires = now.Add(ttl)
	}
	m.addLocked(key, ne)
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deleteLocked(key)
	return nil
}

// Scan implements Store. It collects the matching keys only
// (their strings are shared, not copied) and copies each value as fn takes
// it, so a scan that stops early, or many at once, never copies the store.
func (m *Memory) Scan(_ context.Context, prefix string, fn func(key string, value []byte) bool) error {
	m.mu.RLock()
	now := m.now()
	var keys []string
	match := func(k string) {
		if e := m.entries[k]; strings.HasPrefix(k, prefix) && m.live(e, now) {
			keys = append(keys, k)
		}
	}
	if dir := prefix[:strings.LastIndexByte(prefix, '/')+1]; dir != "" {
		for k := range m.dirs[dir] {
			match(k)
		}
	} else {
		for k := range m.entries {
			match(k)
		}
	}
	m.mu.RUnlock()
	for _, k := range keys {
		m.mu.RLock()
		e, ok := m.entries[k]
		ok = ok && m.live(e, now)
		var v []byte
		if ok {
			v = bytes.Clone(e.value)
		}
		m.mu.RUnlock()
		if ok && !fn(k, v) {
			break
		}
	}
	return nil
}

// gcLocked drops expired entries, at most every few seconds.
func (m *Memory) gcLocked(now time.Time) {
	if now.Before(m.nextGC) {
		return
	}
	m.nextGC = now.Add(5 * time.Second)
	for k, e := range m.entries {
		if !m.live(e, now) {
			m.deleteLocked(k)
		}
	}
}
