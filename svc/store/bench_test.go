package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/svcbench"
	"github.com/skyfleet/skywire/svc/store"
)

// BenchmarkStores measures each store holding 10,000 entries of 512 bytes
// (a transport discovery's size): registrations (store.Update of an
// existing or new key, as the services write) and lookups (Get), from 8
// writers or readers at once, with their rate and p99 latency. Redis runs
// on this machine over loopback.
func BenchmarkStores(b *testing.B) {
	const entries = 10_000
	value := make([]byte, 512)
	ctx := context.Background()
	for _, kind := range []string{"memory", "bbolt", "redis"} {
		b.Run(kind, func(b *testing.B) {
			s := svcbench.Stores(b, kind, "svc", 1<<20)[0]
			svcbench.Fill(b, entries, func(i int) error { // (bbolt batches the writes that arrive at once)
				return s.Swap(ctx, fmt.Sprintf("e/%05d", i), nil, value, time.Hour)
			})
			b.Run("register", func(b *testing.B) {
				svcbench.Measure(b, func(int) error {
					return store.Update(ctx, s, fmt.Sprintf("e/%05d", rand.IntN(entries)), time.Hour, func([]byte) ([]byte, error) { return value, nil })
				}, nil)
			})
			b.Run("lookup", func(b *testing.B) {
				svcbench.Measure(b, func(int) error {
					_, err := s.Get(ctx, fmt.Sprintf("e/%05d", rand.IntN(entries)))
					return err
				}, nil)
			})
		})
	}
}
