package testnet

import (
	"context"
	"testing"
	"time"

	"github.com/skyfleet/skywire/admin"
)

// BenchmarkNetwork200 starts 200 visors on three dmsg servers in a line (as
// TestTwoHundredVisors) and reports how long they took to come up and link,
// and the heap and resident memory each added; then it measures a route's
// set-up (route finder query, SETUP through every hop, one ping) over 1
// hop and over 10 hops, in the same run.
func BenchmarkNetwork200(b *testing.B) {
	const visors = 200
	links := make([]string, visors-1)
	for i := range links {
		if i%3 == 2 {
			links[i] = "dmsg"
		}
	}
	before := memNow()
	began := time.Now()
	n, err := Start(context.Background(), Config{Dir: shortDir(b), Visors: visors, Links: links, DmsgServers: 3, ReadyHops: 10})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	up := time.Since(began)
	after := memNow()
	for _, hops := range []int{1, 10} {
		b.Run(map[int]string{1: "setup-1hop", 10: "setup-10hops"}[hops], func(b *testing.B) {
			from := 50
			ctx := context.Background()
			if err := n.WaitRoute(ctx, from, from+hops); err != nil {
				b.Fatal(err)
			}
			c, err := n.Client(from)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			var setup time.Duration
			for b.Loop() {
				res, err := admin.Call(ctx, c, admin.Ping, admin.PingRequest{PK: n.Nodes[from+hops].PK(), Count: 1})
				if err != nil {
					b.Fatal(err)
				}
				if len(res.Hops) != hops {
					b.Fatalf("%d hops, want %d", len(res.Hops), hops)
				}
				setup += time.Duration(res.SetupMS * float64(time.Millisecond))
			}
			b.ReportMetric(setup.Seconds()*1000/float64(b.N), "ms-setup")
			b.ReportMetric(up.Seconds(), "s-up")
			b.ReportMetric((after.heap-before.heap)/visors/1024, "heap-KiB/visor")
			b.ReportMetric((after.rss-before.rss)/visors/1024, "rss-KiB/visor")
		})
	}
}
