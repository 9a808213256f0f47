package router

import (
	"context"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skyfleet/skywire/transport"
)

// benchStream measures bytes written to w and read from r (both ends in
// this process, sharing its cores).
func benchStream(b *testing.B, w io.Writer, r io.Reader) {
	const chunk = 256 << 10
	buf := make([]byte, chunk)
	done := make(chan struct{})
	total := int64(b.N) * chunk
	go func() {
		defer close(done)
		io.CopyN(io.Discard, r, total)
	}()
	b.SetBytes(chunk)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	<-done
}

// BenchmarkBareTransport is the reference: full packets straight on an stcp
// transport.
func BenchmarkBareTransport(b *testing.B) {
	n, _ := newNodes(b, 2, nil)
	tp := connect(b, n[0], n[1])
	var got atomic.Int64
	n[1].tpm.SetHandler(func(_ *transport.Transport, p transport.Packet) { got.Add(int64(len(p))) }, nil)
	tp.Close()
	eventually(b, "transport gone", func() bool { return n[1].tpm.Find(n[0].pk, transport.STCP) == nil })
	tp = connect(b, n[0], n[1]) // installed with the counting handler
	pkt := transport.MakePacket(make([]byte, transport.MaxPacket), transport.PacketData, 1, transport.MaxPayload)
	b.SetBytes(transport.MaxPacket)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := tp.WritePacket(pkt); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(b.N)*transport.MaxPacket {
		time.Sleep(50 * time.Microsecond)
	}
}

// hopNames names the sub-benchmarks of routes of one and two hops.
var hopNames = map[int]string{1: "1hop", 2: "2hops"}

// lineRoute makes three nodes in a line and a route of hops hops from the
// first.
func lineRoute(b *testing.B, hops int) (*Conn, *Conn) {
	n, _ := newNodes(b, 3, nil)
	connect(b, n[0], n[1])
	connect(b, n[1], n[2])
	return pair(b, n[0], n[hops], 5, DialOptions{})
}

// BenchmarkRoute carries a stream over routes of one and two hops.
func BenchmarkRoute(b *testing.B) {
	for _, hops := range []int{1, 2} {
		b.Run(hopNames[hops], func(b *testing.B) {
			a, c := lineRoute(b, hops)
			defer a.Close()
			defer c.Close()
			benchStream(b, a, c)
		})
	}
}

// BenchmarkSetup2Hops is one route set up (and closed) over two hops.
func BenchmarkSetup2Hops(b *testing.B) {
	n, _ := newNodes(b, 3, nil)
	connect(b, n[0], n[1])
	connect(b, n[1], n[2])
	l, _ := n[2].r.Listen(5)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := n[0].r.Dial(ctx, n[2].pk, 5, DialOptions{})
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkPing is one round trip over a route of one and two hops (the
// difference is what a hop adds).
func BenchmarkPing(b *testing.B) {
	for _, hops := range []int{1, 2} {
		b.Run(hopNames[hops], func(b *testing.B) {
			a, c := lineRoute(b, hops)
			defer a.Close()
			defer c.Close()
			ctx := context.Background()
			for b.Loop() {
				if _, err := a.Ping(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIsolation reports the goodput a two-hop route keeps while
// another route on the same transports has a reader that stopped, as a
// fraction of its goodput alone.
func BenchmarkIsolation(b *testing.B) {
	n, _ := newNodes(b, 3, nil)
	connect(b, n[0], n[1])
	connect(b, n[1], n[2])
	measure := func(a, c net.Conn) float64 {
		const size = 256 << 20
		began := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			io.CopyN(io.Discard, c, size)
		}()
		buf := make([]byte, 256<<10)
		for sent := 0; sent < size; sent += len(buf) {
			a.Write(buf)
		}
		<-done
		return size / time.Since(began).Seconds()
	}
	for b.Loop() {
		a, c := pair(b, n[0], n[2], 5, DialOptions{})
		// Alternate alone and beside a stalled route, three times each, and
		// compare medians: one transfer each is at the mercy of the noise.
		var alone, shared []float64
		for range 3 {
			alone = append(alone, measure(a, c))
			sa, sc := pair(b, n[0], n[2], 6, DialOptions{})
			go func() {
				buf := make([]byte, 64<<10)
				for {
					if _, err := sa.Write(buf); err != nil {
						return
					}
				}
			}()
			time.Sleep(100 * time.Millisecond) // the stalled route has filled its window
			shared = append(shared, measure(a, c))
			sa.Close()
			sc.Close()
		}
		a.Close()
		c.Close()
		slices.Sort(alone)
		slices.Sort(shared)
		b.ReportMetric(shared[1]/alone[1], "goodput-kept")
		b.ReportMetric(alone[1]/1e6, "MB/s-alone")
	}
}
