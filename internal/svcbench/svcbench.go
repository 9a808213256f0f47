// Package svcbench runs the services' benchmarks: the stores their
// instances run on (memory, a bbolt file, a real Redis, three instances on
// one Redis), loopback servers, and a measure of rate and p99 latency. Only
// tests import it.
package svcbench

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/redistest"
	"github.com/skyfleet/skywire/svc/store"
)

// Kinds are the stores a service is measured on: "redis-x3" is three
// instances, each with its own connections, on one Redis.
var Kinds = []string{"memory", "bbolt", "redis", "redis-x3"}

// Stores returns the stores of namespace name that the instances of kind
// run on (one, or three on the same Redis), holding up to max entries.
func Stores(b *testing.B, kind, name string, max int) []store.Store {
	b.Helper()
	switch kind {
	case "memory":
		return []store.Store{store.NewMemory(max)}
	case "bbolt":
		d, err := store.OpenBolt(filepath.Join(b.TempDir(), "s.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		s, err := d.Store(name, max)
		if err != nil {
			b.Fatal(err)
		}
		return []store.Store{s}
	}
	url := redistest.Start(b)
	var out []store.Store
	for range map[string]int{"redis": 1, "redis-x3": 3}[kind] {
		d, err := store.OpenRedis(context.Background(), url)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		s, err := d.Store(name, max)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// Fill calls put(i) for i in [0, n) from 64 goroutines (a bbolt store
// batches what arrives at once).
func Fill(b *testing.B, n int, put func(i int) error) {
	b.Helper()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 64 {
				if err := put(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Serve runs h on a loopback port until the benchmark ends and returns its
// base URL.
func Serve(b *testing.B, h http.Handler) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

// Client is an HTTP client that keeps enough idle connections for Measure.
func Client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}

// Measure runs op(i) b.N times in all from 8 goroutines and reports the
// rate (ops/s) and the 99th percentile latency (ms-p99). metrics are
// reported too (after the timer reset that would drop them).
func Measure(b *testing.B, op func(i int) error, metrics map[string]float64) {
	b.Helper()
	var mu sync.Mutex
	var lat []time.Duration
	var next atomic.Int64
	b.SetParallelism(4) // 8 at once on 2 cores
	b.ResetTimer()
	began := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			err := op(int(next.Add(1)))
			mine = append(mine, time.Since(t0))
			if err != nil {
				b.Error(err)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	el := time.Since(began)
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/el.Seconds(), "ops/s")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
	}
	for unit, v := range metrics {
		b.ReportMetric(v, unit)
	}
}

// HeapInUse is the live heap after a collection, in bytes.
func HeapInUse() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse)
}
