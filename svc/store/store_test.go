package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// testStore is the behaviour every Store must have (the conformance suite:
// Memory, Bolt and Redis run it). s holds at most 100 entries; entries
// with ttl expire once advance(2*ttl) moved its clock on.
func testStore(t *testing.T, s Store, ttl time.Duration, advance func(time.Duration)) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty Get: %v", err)
	}
	if err := s.Swap(ctx, "a", nil, []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Swap(ctx, "a", nil, []byte("2"), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("create over existing: %v", err)
	}
	if err := s.Swap(ctx, "a", []byte("x"), []byte("2"), 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("swap with wrong old: %v", err)
	}
	if err := s.Swap(ctx, "a", []byte("1"), []byte("2"), 0); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get(ctx, "a"); string(v) != "2" {
		t.Fatalf("a = %q", v)
	}
	if err := s.Swap(ctx, "a", []byte("2"), nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatal("swap to nil did not delete")
	}

	// Put sets whatever the key held, with its TTL; a nil value deletes.
	if err := Put(ctx, s, "put", []byte("a"), 0); err != nil {
		t.Fatal(err)
	}
	if err := Put(ctx, s, "put", []byte("b"), ttl); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(ctx, "put"); err != nil || string(v) != "b" {
		t.Fatalf("after two Puts: %q %v", v, err)
	}
	advance(2 * ttl)
	if _, err := s.Get(ctx, "put"); !errors.Is(err, ErrNotFound) {
		t.Fatal("a Put entry outlived its TTL")
	}
	if err := Put(ctx, s, "put", make([]byte, MaxValue+1), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an oversized Put: %v", err)
	}

	// Expiry.
	s.Swap(ctx, "t", nil, []byte("x"), ttl)
	advance(2 * ttl)
	if _, err := s.Get(ctx, "t"); !errors.Is(err, ErrNotFound) {
		t.Fatal("expired entry still visible")
	}
	if err := s.Swap(ctx, "t", nil, []byte("y"), 0); err != nil {
		t.Fatalf("create over an expired entry: %v", err)
	}

	// Scan: the prefix's live keys with their values, each once, and an
	// early stop (in no promised order).
	for _, k := range []string{"p/b", "p/a", "q/a", "p/c"} {
		s.Swap(ctx, k, nil, []byte("v"+k), 0)
	}
	s.Swap(ctx, "p/gone", nil, []byte("x"), ttl)
	advance(2 * ttl)
	seen := map[string]string{}
	s.Scan(ctx, "p/", func(k string, v []byte) bool {
		seen[k] += string(v)
		return true
	})
	if fmt.Sprint(seen) != "map[p/a:vp/a p/b:vp/b p/c:vp/c]" {
		t.Fatalf("scan = %v", seen)
	}
	n := 0
	s.Scan(ctx, "p/", func(string, []byte) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("a scan stopped after 2 called fn %d times", n)
	}
	// Prefixes that end inside a name or a level deeper, keys nested under
	// others, a deleted and a re-created key, and the whole store.
	for _, k := range []string{"d/x1/a", "d/x1/b", "d/x12/a", "d/y/a", "d/x1"} {
		s.Swap(ctx, k, nil, []byte("v"), 0)
	}
	s.Delete(ctx, "d/x1/b")
	s.Swap(ctx, "d/y/a", []byte("v"), nil, 0)
	s.Swap(ctx, "d/y/a", nil, []byte("w"), 0)
	for prefix, want := range map[string]string{
		"d/x1/": "[d/x1/a]", "d/x1": "[d/x1 d/x1/a d/x12/a]", "d/": "[d/x1 d/x1/a d/x12/a d/y/a]",
		"d/y/a": "[d/y/a]", "d/z": "[]", "d": "[d/x1 d/x1/a d/x12/a d/y/a]",
	} {
		var got []string
		s.Scan(ctx, prefix, func(k string, _ []byte) bool { got = append(got, k); return true })
		slices.Sort(got)
		if fmt.Sprint(got) != want {
			t.Fatalf("scan %q = %v, want %s", prefix, got, want)
		}
	}
	all := 0
	s.Scan(ctx, "", func(string, []byte) bool { all++; return true })
	if all != 9 { // t, p/a, p/b, p/c, q/a and the four d/ keys
		t.Fatalf("a scan of everything saw %d keys, want 9", all)
	}
	for _, k := range []string{"d/x1/a", "d/x12/a", "d/y/a", "d/x1", "q/a"} {
		s.Delete(ctx, k)
	}

	// Bounds: key and value sizes; the number of entries.
	if err := s.Swap(ctx, "big", nil, make([]byte, MaxValue+1), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an oversized value: %v", err)
	}
	if err := s.Swap(ctx, string(make([]byte, MaxKey+1)), nil, []byte("x"), 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("an oversized key: %v", err)
	}
	if err := s.Swap(ctx, "max", nil, make([]byte, MaxValue), 0); err != nil {
		t.Fatalf("a value of MaxValue: %v", err)
	}
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		full = s.Swap(ctx, fmt.Sprintf("fill/%03d", i), nil, []byte("x"), 0)
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("200 entries in a store of 100: %v", full)
	}
	if err := s.Swap(ctx, "max", make([]byte, MaxValue), []byte("y"), 0); err != nil {
		t.Fatalf("updating an entry when full: %v", err)
	}
	// Put: over an entry when full is fine, a new one is refused.
	if err := Put(ctx, s, "max", []byte("z"), 0); err != nil {
		t.Fatalf("putting over an entry when full: %v", err)
	}
	if v, _ := s.Get(ctx, "max"); string(v) != "z" {
		t.Fatalf("after Put the entry holds %q", v)
	}
	if err := Put(ctx, s, "fill/put", []byte("x"), 0); !errors.Is(err, ErrFull) {
		t.Fatalf("putting a new entry when full: %v", err)
	}
	s.Delete(ctx, "max")
	if err := s.Swap(ctx, "fill/new", nil, []byte("x"), 0); err != nil {
		t.Fatalf("a new entry once one was deleted: %v", err)
	}
	s.Scan(ctx, "fill/", func(k string, _ []byte) bool { s.Delete(ctx, k); return true })

	// Update retries through concurrent writers.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				err := Update(ctx, s, "n", 0, func(old []byte) ([]byte, error) {
					return append(old, 'x'), nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if v, _ := s.Get(ctx, "n"); len(v) != 80 {
		t.Fatalf("lost updates: %d of 80", len(v))
	}
}

func TestMemory(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMemory(100)
	m.now = func() time.Time { return now }
	testStore(t, m, time.Minute, func(d time.Duration) { now = now.Add(d) })
}

// A scan that stops early copies what it handed out, not the store.
func TestScanDoesNotCopyTheStore(t *testing.T) {
	m := NewMemory(20000)
	ctx := context.Background()
	big := make([]byte, 4<<10)
	for i := range 10000 {
		if err := m.Swap(ctx, fmt.Sprintf("k/%05d", i), nil, big, 0); err != nil {
			t.Fatal(err)
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n := 0
	m.Scan(ctx, "k/", func(string, []byte) bool { n++; return n < 10 })
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Fatalf("a scan of 10 of 10000 4 KiB entries allocated %d KiB", got>>10)
	}
}
