package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// testStore is the behaviour every Store must have; later stores run it too.
func testStore(t *testing.T, s Store, advance func(time.Duration)) {
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

	// Expiry.
	s.Swap(ctx, "t", nil, []byte("x"), time.Minute)
	advance(2 * time.Minute)
	if _, err := s.Get(ctx, "t"); !errors.Is(err, ErrNotFound) {
		t.Fatal("expired entry still visible")
	}
	if err := s.Swap(ctx, "t", nil, []byte("y"), 0); err != nil {
		t.Fatalf("create over an expired entry: %v", err)
	}

	// Scan: prefix, order, early stop.
	for _, k := range []string{"p/b", "p/a", "q/a", "p/c"} {
		s.Swap(ctx, k, nil, []byte(k), 0)
	}
	var got []string
	s.Scan(ctx, "p/", func(k string, v []byte) bool {
		got = append(got, k)
		return len(got) < 2
	})
	if fmt.Sprint(got) != "[p/a p/b]" {
		t.Fatalf("scan = %v", got)
	}

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
	testStore(t, m, func(d time.Duration) { now = now.Add(d) })
}

func TestMemoryBounded(t *testing.T) {
	m := NewMemory(2)
	ctx := context.Background()
	m.Swap(ctx, "a", nil, []byte("1"), 0)
	m.Swap(ctx, "b", nil, []byte("1"), 0)
	if err := m.Swap(ctx, "c", nil, []byte("1"), 0); !errors.Is(err, ErrFull) {
		t.Fatalf("third entry: %v", err)
	}
	if err := m.Swap(ctx, "a", []byte("1"), []byte("2"), 0); err != nil {
		t.Fatalf("updating when full: %v", err)
	}
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
