package testnet

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/internal/race"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// shortDir is a temporary directory with a short path (unix sockets).
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startNet starts cfg's network in a short temporary directory, closed
// when the test ends.
func startNet(t *testing.T, cfg Config) *Network {
	t.Helper()
	cfg.Dir = shortDir(t)
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// client is an admin client of node i, closed when the test ends.
func client(t *testing.T, n *Network, i int) *admin.Client {
	t.Helper()
	c, err := n.Client(i)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// only keeps the entries logged with one message (and none of the cost of
// the others: they are dropped before their fields are encoded).
type only struct {
	zapcore.Core
	msg string
}

func (o only) With(f []zapcore.Field) zapcore.Core { return only{o.Core.With(f), o.msg} }

func (o only) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message != o.msg {
		return ce
	}
	return o.Core.Check(e, ce)
}

// A link that drops comes back: the far end closes it (and keeps no
// persistent transport of its own), the near end dials it again, and the
// route over it works.
func TestLinkDroppedComesBack(t *testing.T) {
	n := startNet(t, Config{Visors: 2})
	a, b := client(t, n, 0), client(t, n, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before, err := admin.Call(ctx, a, admin.ListTransports, admin.Empty{})
	if err != nil || len(before) != 1 || !before[0].Persistent {
		t.Fatalf("a's transports: %+v %v", before, err)
	}
	tps, err := admin.Call(ctx, b, admin.ListTransports, admin.Empty{})
	if err != nil || len(tps) != 1 {
		t.Fatalf("b's transports: %+v %v", tps, err)
	}
	if _, err := admin.Call(ctx, b, admin.RemoveTransport, admin.RemoveTransportRequest{ID: tps[0].ID}); err != nil {
		t.Fatal(err)
	}
	// The new transport has the same ID (made of the keys and the type);
	// it came up after the old one.
	for {
		got, err := admin.Call(ctx, a, admin.ListTransports, admin.Empty{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].Created.After(before[0].Created) && got[0].Dialer {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("a's link never came back: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := admin.Call(ctx, a, admin.Ping, admin.PingRequest{PK: n.Nodes[1].PK(), Count: 1}); err != nil {
		t.Fatalf("a route over the link that came back: %v", err)
	}
}

// A line of three visors with mixed link types routes end to end over two
// hops, through the real admin API.
func TestLineRoutesOverTwoHops(t *testing.T) {
	n := startNet(t, Config{Links: []string{"stcp", "dmsg"}})
	res, err := admin.Call(context.Background(), client(t, n, 0), admin.Ping, admin.PingRequest{PK: n.Nodes[2].PK(), Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hops) != 2 || res.Hops[0].Type != "stcp" || res.Hops[1].Type != "dmsg" || res.Hops[1].PK != n.Nodes[2].PK() {
		t.Fatalf("path %+v, want a→b over stcp, b→c over dmsg", res.Hops)
	}
	if len(res.RTTsMS) != 3 {
		t.Fatalf("%d pongs, want 3", len(res.RTTsMS))
	}
}

// A network of 200 visors in one process, spread over three dmsg servers:
// a line whose links alternate stcp and dmsg, so that routes of 10 hops
// exist between visors ten apart. Twenty of them are found and set up at
// once, each exactly 10 hops long; memory per visor is reported.
func TestTwoHundredVisors(t *testing.T) {
	if testing.Short() {
		t.Skip("200 visors: not in -short")
	}
	if race.Enabled {
		// The detector slows 200 visors several times over, past what a
		// loaded 2-core machine links in minutes; `make test` runs this
		// test again without it. Smaller networks run under it.
		t.Skip("200 visors: run without -race (make test does)")
	}
	const visors, hops = 200, 10
	links := make([]string, visors-1)
	for i := range links {
		if i%3 == 2 {
			links[i] = "dmsg"
		}
	}
	before := memNow()
	start := time.Now()
	// Transports that go down are counted by why, for a failure's message.
	core, logs := observer.New(zap.InfoLevel)
	n := startNet(t, Config{Visors: visors, Links: links, DmsgServers: 3, ReadyHops: hops, Log: zap.New(only{core, "transport down"})})
	up := time.Since(start)
	after := memNow()
	for i, s := range n.DmsgServers {
		if s.Sessions() == 0 {
			t.Errorf("dmsg server %d has no sessions: visors did not spread", i+2)
		}
	}

	var wg sync.WaitGroup
	for k := range 20 {
		from := k * (visors - hops - 1) / 19
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := n.Client(from)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// The route finder sees the last links at its next refresh.
			// Each distinct error is kept, with when it came, for the
			// failure's message.
			began, tries := time.Now(), 0
			var seen []string
			for {
				tries++
				res, err := admin.Call(ctx, c, admin.Ping, admin.PingRequest{PK: n.Nodes[from+hops].PK(), Count: 2})
				if err != nil && (len(seen) == 0 || !strings.HasSuffix(seen[len(seen)-1], err.Error())) {
					seen = append(seen, fmt.Sprintf("at %v (try %d): %v", time.Since(began).Round(time.Millisecond), tries, err))
				}
				if err == nil {
					if len(res.Hops) != hops || len(res.RTTsMS) != 2 {
						t.Errorf("%s → %s: %d hops, %d pongs; want %d and 2", n.Nodes[from].Name, n.Nodes[from+hops].Name, len(res.Hops), len(res.RTTsMS), hops)
					}
					return
				}
				if ctx.Err() != nil {
					t.Errorf("%s → %s: %d tries:\n%s", n.Nodes[from].Name, n.Nodes[from+hops].Name, tries, strings.Join(seen, "\n"))
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		why := map[string]int{}
		for _, e := range logs.All() {
			why[fmt.Sprint(e.ContextMap()["err"])]++
		}
		t.Logf("transports gone down, by why: %v", why)
	}
	t.Logf("%d visors on %d dmsg servers up and linked in %v; per visor: %.0f KiB heap, %.0f KiB RSS, %.0f goroutines",
		visors, 1+len(n.DmsgServers), up.Round(time.Millisecond), (after.heap-before.heap)/visors/1024, (after.rss-before.rss)/visors/1024, float64(after.goroutines-before.goroutines)/visors)
}

type mem struct {
	heap, rss  float64 // bytes
	goroutines int
}

// memNow is the process's live heap (after a collection), resident set and
// goroutines.
func memNow() mem {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := mem{heap: float64(ms.HeapInuse), goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				m.rss = kb * 1024
			}
		}
	}
	return m
}
