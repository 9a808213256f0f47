package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/redistest"
)

// BenchmarkStores measures each store holding 10,000 entries of 512 bytes
// (a transport discovery's size): registrations (store.Update of an
// existing or new key, as the services write) and lookups (Get), from 8
// writers or readers at once, with their rate and p99 latency. Redis runs
// on this machine over loopback.
func BenchmarkStores(b *testing.B) {
	const entries = 10_000
	value := make([]byte, 512)
	kinds := []struct {
		name string
		open func(b *testing.B) Store
	}{
		{"memory", func(*testing.B) Store { return NewMemory(1 << 20) }},
		{"bbolt", func(b *testing.B) Store {
			d, err := OpenBolt(filepath.Join(b.TempDir(), "s.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			s, _ := d.Store("svc", 1<<20)
			return s
		}},
		{"redis", func(b *testing.B) Store {
			url := redistest.Start(b)
			d, err := OpenRedis(context.Background(), url)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { d.Close() })
			s, _ := d.Store("svc", 1<<20)
			return s
		}},
	}
	ctx := context.Background()
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			s := k.open(b)
			var wg sync.WaitGroup
			for w := range 8 { // fill with 8 writers (bbolt syncs each write)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < entries; i += 8 {
						if err := s.Swap(ctx, fmt.Sprintf("e/%05d", i), nil, value, time.Hour); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			for _, op := range []string{"register", "lookup"} {
				b.Run(op, func(b *testing.B) {
					var mu sync.Mutex
					var lat []time.Duration
					b.SetParallelism(4) // 8 at once on 2 cores
					began := time.Now()
					b.RunParallel(func(pb *testing.PB) {
						var mine []time.Duration
						for pb.Next() {
							key := fmt.Sprintf("e/%05d", rand.IntN(entries))
							t0 := time.Now()
							var err error
							if op == "register" {
								err = Update(ctx, s, key, time.Hour, func([]byte) ([]byte, error) { return value, nil })
							} else {
								_, err = s.Get(ctx, key)
							}
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
				})
			}
		})
	}
}
