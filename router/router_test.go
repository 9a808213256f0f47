package router

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"golang.org/x/net/nettest"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is a visor's transport manager and router, on loopback stcp.
type node struct {
	pk    cipher.PubKey
	sk    cipher.SecKey
	tpm   *transport.Manager
	r     *Router
	stcp  *transport.STCPNet
	table map[cipher.PubKey]string
	stop  func()
}

// graphPaths is a PathFinder over the transports the test made: BFS over
// the nodes' managers, shortest first, honouring minHops by listing every
// simple path up to MaxHops.
type graphPaths struct {
	mu    sync.Mutex
	nodes map[cipher.PubKey]*node
}

func (g *graphPaths) Paths(_ context.Context, src, dst cipher.PubKey, minHops int) ([][]Hop, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out [][]Hop
	var walk func(at cipher.PubKey, path []Hop, seen map[cipher.PubKey]bool)
	walk = func(at cipher.PubKey, path []Hop, seen map[cipher.PubKey]bool) {
		if at == dst {
			if len(path) >= minHops {
				out = append(out, append([]Hop(nil), path...))
			}
			return
		}
		if len(path) >= 4 {
			return
		}
		for _, tp := range g.nodes[at].tpm.Transports() {
			next := tp.Remote()
			if seen[next] {
				continue
			}
			seen[next] = true
			walk(next, append(path, Hop{PK: next, Type: tp.Type()}), seen)
			delete(seen, next)
		}
	}
	walk(src, nil, map[cipher.PubKey]bool{src: true})
	for i := 1; i < len(out); i++ { // shortest first
		for j := i; j > 0 && len(out[j]) < len(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

func newNodes(t testing.TB, n int, mod func(*Config), tmod ...func(*transport.Config)) ([]*node, *graphPaths) {
	t.Helper()
	g := &graphPaths{nodes: map[cipher.PubKey]*node{}}
	nodes := make([]*node, n)
	for i := range nodes {
		pk, sk := cipher.GenerateKeyPair()
		nd := &node{pk: pk, sk: sk, table: map[cipher.PubKey]string{}}
		var err error
		if nd.stcp, err = transport.NewSTCP(sk, nd.table, "127.0.0.1:0", zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		nodes[i] = nd
		g.nodes[pk] = nd
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.table[b.pk] = b.stcp.Addr().String()
			}
		}
	}
	for _, nd := range nodes {
		tcfg := transport.Config{SK: nd.sk, Networks: []transport.Network{nd.stcp}}
		for _, m := range tmod {
			m(&tcfg)
		}
		nd.tpm = transport.NewManager(tcfg)
		cfg := Config{SK: nd.sk, Transports: nd.tpm, Paths: g}
		if mod != nil {
			mod(&cfg)
		}
		nd.r = New(cfg)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); nd.tpm.Run(ctx) }()
		go func() { defer wg.Done(); nd.r.Run(ctx) }()
		var once sync.Once
		nd.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
		t.Cleanup(nd.stop)
	}
	return nodes, g
}

func connect(t testing.TB, a, b *node) *transport.Transport {
	t.Helper()
	tp, err := a.tpm.Dial(context.Background(), b.pk, transport.STCP)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "both ends have the transport", func() bool { return b.tpm.Find(a.pk, transport.STCP) != nil })
	return tp
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// pair dials b:port from a and returns both ends.
func pair(t testing.TB, a, b *node, port uint16, opts DialOptions) (*Conn, *Conn) {
	t.Helper()
	l, err := b.r.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan *Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := a.r.Dial(ctx, b.pk, port, opts)
	if err != nil {
		t.Fatal(err)
	}
	cb := <-ch
	if cb == nil {
		t.Fatal("accept failed")
	}
	return ca, cb
}

func exchange(t *testing.T, a, b net.Conn, size int) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() {
		_, err := a.Write(data)
		errc <- err
	}()
	got := make([]byte, size)
	if _, err := io.ReadFull(b, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("data corrupted")
	}
}

func TestDirectRoute(t *testing.T) {
	n, _ := newNodes(t, 2, nil)
	connect(t, n[0], n[1])
	a, b := pair(t, n[0], n[1], 5, DialOptions{})
	defer a.Close()
	defer b.Close()
	if len(a.Hops()) != 1 || a.Hops()[0].PK != n[1].pk {
		t.Fatalf("hops %v", a.Hops())
	}
	if _, ok := a.Conn.(*routeConn); !ok {
		t.Fatal("a one-hop route should ride on its transport's encryption alone")
	}
	if a.RemoteAddr().String() != n[1].pk.Hex()+":5" || b.RemoteAddr() != a.LocalAddr() {
		t.Fatalf("addresses %v %v", a.RemoteAddr(), b.RemoteAddr())
	}
	exchange(t, a, b, 4<<20)
	exchange(t, b, a, 4<<20)
}

func TestTwoHopRoute(t *testing.T) {
	n, _ := newNodes(t, 3, nil)
	connect(t, n[0], n[1])
	connect(t, n[1], n[2])
	a, c := pair(t, n[0], n[2], 7, DialOptions{})
	if _, ok := a.Conn.(*noise.Conn); !ok {
		t.Fatal("a two-hop route must be encrypted end to end")
	}
	if len(a.Hops()) != 2 || a.Hops()[0].PK != n[1].pk || a.Hops()[1].PK != n[2].pk {
		t.Fatalf("hops %v", a.Hops())
	}
	if rtts := a.HopRTTs(); len(rtts) != 2 {
		t.Fatalf("hop RTTs %v", rtts)
	}
	exchange(t, a, c, 16<<20)
	exchange(t, c, a, 16<<20)
	// The middle visor forwards both directions; the ends consume.
	if got := len(n[1].r.Rules()); got != 2 {
		t.Fatalf("middle has %d rules, want 2", got)
	}
	for _, ru := range n[1].r.Rules() {
		if ru.Kind != "forward" || ru.Pending {
			t.Fatalf("middle rule %+v", ru)
		}
	}
	rtt, err := a.Ping(context.Background())
	if err != nil || rtt <= 0 {
		t.Fatalf("ping: %v %v", rtt, err)
	}

	// Closing removes the route's rules on every hop, and the far end reads EOF.
	a.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("far end after close: %v", err)
	}
	c.Close()
	eventually(t, "rules gone on every hop", func() bool {
		for _, nd := range n {
			for _, ru := range nd.r.Rules() {
				if ru.Kind == "forward" || ru.Remote != "" {
					return false
				}
			}
		}
		return true
	})
}

// MinHops forces a longer path even when a direct transport exists.
func TestMinHops(t *testing.T) {
	n, _ := newNodes(t, 3, nil)
	connect(t, n[0], n[1])
	connect(t, n[1], n[2])
	connect(t, n[0], n[2])
	a, c := pair(t, n[0], n[2], 9, DialOptions{MinHops: 2})
	defer a.Close()
	defer c.Close()
	if len(a.Hops()) != 2 {
		t.Fatalf("hops %v", a.Hops())
	}
	exchange(t, a, c, 1<<20)
}

func TestRefusedSetupNamesTheHop(t *testing.T) {
	n, g := newNodes(t, 3, nil)
	connect(t, n[0], n[1])
	connect(t, n[1], n[2])
	ctx := context.Background()

	_, err := n[0].r.Dial(ctx, n[2].pk, 99, DialOptions{})
	var se *SetupError
	if !errors.As(err, &se) || se.Hop != n[2].pk || se.Index != 1 {
		t.Fatalf("nothing listening: %v", err)
	}
	if want := "nothing listens on port 99"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("error %q does not say %q", err, want)
	}

	// The path claims a transport the middle hop does not have.
	l, _ := n[2].r.Listen(99)
	defer l.Close()
	n[1].tpm.Find(n[2].pk, transport.STCP).Close()
	eventually(t, "transport gone", func() bool { return n[1].tpm.Find(n[2].pk, transport.STCP) == nil })
	stale := [][]Hop{{{PK: n[1].pk, Type: transport.STCP}, {PK: n[2].pk, Type: transport.STCP}}}
	n[0].r.cfg.Paths = fixedPaths(stale)
	_, err = n[0].r.Dial(ctx, n[2].pk, 99, DialOptions{})
	if !errors.As(err, &se) || se.Hop != n[1].pk || se.Index != 0 {
		t.Fatalf("middle hop without a transport: %v", err)
	}
	n[0].r.cfg.Paths = g
	// Nothing is left pending anywhere.
	eventually(t, "no pending rules", func() bool {
		for _, nd := range n {
			for _, ru := range nd.r.Rules() {
				if ru.Pending {
					return false
				}
			}
		}
		return true
	})
}

type fixedPaths [][]Hop

func (f fixedPaths) Paths(context.Context, cipher.PubKey, cipher.PubKey, int) ([][]Hop, error) {
	return f, nil
}

// The next path is tried when one fails.
func TestNextPathAfterFailure(t *testing.T) {
	n, _ := newNodes(t, 4, nil)
	connect(t, n[0], n[1])
	connect(t, n[0], n[2])
	connect(t, n[2], n[3])
	l, _ := n[3].r.Listen(3)
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	// The first path goes through n1, which has no transport to n3.
	n[0].r.cfg.Paths = fixedPaths{
		{{PK: n[1].pk, Type: transport.STCP}, {PK: n[3].pk, Type: transport.STCP}},
		{{PK: n[2].pk, Type: transport.STCP}, {PK: n[3].pk, Type: transport.STCP}},
	}
	c, err := n[0].r.Dial(context.Background(), n[3].pk, 3, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Hops()[0].PK != n[2].pk {
		t.Fatalf("took %v", c.Hops())
	}
}

func TestRouteNettest(t *testing.T) {
	for _, hops := range []int{1, 2} {
		t.Run(map[int]string{1: "one hop", 2: "two hops"}[hops], func(t *testing.T) {
			n, _ := newNodes(t, 3, nil)
			connect(t, n[0], n[1])
			connect(t, n[1], n[2])
			dst := n[hops]
			port := uint16(10)
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				port++
				a, b := pair(t, n[0], dst, port, DialOptions{})
				return a, b, func() { a.Close(); b.Close() }, nil
			})
		})
	}
}

// A route whose reader stops does not stop another route on the same
// transports (the throughput kept is BenchmarkIsolation's).
func TestIsolation(t *testing.T) {
	n, _ := newNodes(t, 3, nil)
	connect(t, n[0], n[1])
	connect(t, n[1], n[2])
	stalledA, stalledC := pair(t, n[0], n[2], 20, DialOptions{})
	defer stalledA.Close()
	defer stalledC.Close()
	go func() { // fills its window, then blocks: nobody reads stalledC
		buf := make([]byte, 64<<10)
		for {
			if _, err := stalledA.Write(buf); err != nil {
				return
			}
		}
	}()
	a, c := pair(t, n[0], n[2], 21, DialOptions{})
	defer a.Close()
	defer c.Close()
	exchange(t, a, c, 64<<20)
}

func TestTransportLossEndsRoute(t *testing.T) {
	n, _ := newNodes(t, 3, nil)
	connect(t, n[0], n[1])
	bc := connect(t, n[1], n[2])
	a, c := pair(t, n[0], n[2], 30, DialOptions{})
	defer a.Close()
	defer c.Close()
	exchange(t, a, c, 1<<10)
	bc.Close()
	_, err := a.Read(make([]byte, 1))
	if !errors.Is(err, ErrRouteClosed) {
		t.Fatalf("read after the path broke: %v", err)
	}
	eventually(t, "rules gone", func() bool { return len(n[0].r.Rules()) == 0 && len(n[1].r.Rules()) == 0 })
}

// Idle routes live on (route pings keep every hop's rules), and ids are
// reused after routes end.
func TestKeepAliveAndIDReuse(t *testing.T) {
	n, _ := newNodes(t, 3, func(c *Config) { c.KeepAlive = 300 * time.Millisecond })
	connect(t, n[0], n[1])
	connect(t, n[1], n[2])
	a, c := pair(t, n[0], n[2], 40, DialOptions{})
	time.Sleep(1500 * time.Millisecond) // five keep-alive periods, idle
	exchange(t, a, c, 1<<10)
	a.Close()
	c.Close()
	eventually(t, "rules gone", func() bool { return len(n[1].r.Rules()) == 0 })
	n[1].r.mu.Lock()
	freed := len(n[1].r.free)
	n[1].r.mu.Unlock()
	if freed != 2 {
		t.Fatalf("%d ids freed at the middle hop, want 2", freed)
	}
}

func TestPingAndBench(t *testing.T) {
	n, _ := newNodes(t, 3, nil)
	connect(t, n[0], n[1])
	connect(t, n[1], n[2])
	ctx := context.Background()
	res, err := n[0].r.Ping(ctx, n[2].pk, 3, DialOptions{})
	if err != nil || len(res.RTTs) != 3 || len(res.Hops) != 2 {
		t.Fatalf("ping: %+v %v", res, err)
	}
	b, err := n[0].r.Bench(ctx, n[2].pk, 8<<20, DialOptions{})
	if err != nil || b.Bytes != 8<<20 || b.Duration <= 0 {
		t.Fatalf("bench: %+v %v", b, err)
	}
}

func TestSetupChecks(t *testing.T) {
	n, _ := newNodes(t, 2, nil)
	tp := connect(t, n[0], n[1])
	l, _ := n[1].r.Listen(50)
	defer l.Close()
	// A valid setup, replayed: the second is refused.
	m := &setupMsg{time: time.Now(), src: Addr{n[0].pk, 60000}, dst: Addr{n[1].pk, 50}, hops: []Hop{{PK: n[1].pk, Type: transport.STCP}}}
	rand.Read(m.nonce[:])
	if err := encodeSetup(m, n[0].sk); err != nil {
		t.Fatal(err)
	}
	// Register the rev ids the answers come back on.
	answers := func() (chan dialResult, uint32) {
		rc := newRouteConn(n[0].r, m.src, m.dst, m.hops)
		ru := &rule{kind: ruleConsume, in: tp, conn: rc, dial: make(chan dialResult, 1)}
		n[0].r.mu.Lock()
		rc.inID = n[0].r.addRuleLocked(ru)
		n[0].r.mu.Unlock()
		return ru.dial, rc.inID
	}
	first, id1 := answers()
	m.revID = id1
	n[0].r.send(tp, transport.PacketSetup, 0, m.payload())
	if res := <-first; res.ok == nil {
		t.Fatalf("valid setup refused: %s", res.reason)
	}
	second, id2 := answers()
	m.revID = id2 // the rev id is outside the signature
	n[0].r.send(tp, transport.PacketSetup, 0, m.payload())
	if res := <-second; res.ok != nil || res.reason != "replayed setup" {
		t.Fatalf("replayed setup: %+v", res)
	}
	// Signed by someone else.
	_, other := cipher.GenerateKeyPair()
	rand.Read(m.nonce[:])
	encodeSetup(m, other)
	third, id3 := answers()
	m.revID = id3
	n[0].r.send(tp, transport.PacketSetup, 0, m.payload())
	if res := <-third; res.ok != nil || !bytes.Contains([]byte(res.reason), []byte("forged")) {
		t.Fatalf("forged setup: %+v", res)
	}
}

func FuzzParseSetup(f *testing.F) {
	pk, sk := cipher.GenerateKeyPair()
	m := &setupMsg{time: time.Now(), src: Addr{pk, 1}, dst: Addr{pk, 2}, hops: []Hop{{PK: pk, Type: transport.STCP}}, revID: 7}
	encodeSetup(m, sk)
	f.Add(m.payload())
	f.Add((&setupOK{fwdID: 3, rtts: []time.Duration{time.Millisecond}, noise: []byte("x")}).payload())
	f.Add(setupErrPayload(pk, "no"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := parseSetup(b); err == nil && len(m.hops) == 0 {
			t.Fatal("a setup without hops parsed")
		}
		parseSetupOK(b)
		parseSetupErr(b)
	})
}

// CloseWrite ends one direction: the other end reads EOF and still
// answers, on 1-hop and 2-hop routes alike.
func TestHalfClose(t *testing.T) {
	for _, hops := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d hops", hops), func(t *testing.T) {
			n, _ := newNodes(t, hops+1, nil)
			for i := 0; i < hops; i++ {
				connect(t, n[i], n[i+1])
			}
			a, b := pair(t, n[0], n[hops], 11, DialOptions{})
			defer a.Close()
			defer b.Close()
			req := bytes.Repeat([]byte("q"), 300000)
			go func() {
				a.Write(req)
				a.CloseWrite()
			}()
			got, err := io.ReadAll(b)
			if err != nil || !bytes.Equal(got, req) {
				t.Fatalf("request: %d bytes, %v", len(got), err)
			}
			if _, err := a.Write([]byte("late")); err == nil {
				t.Fatal("wrote after CloseWrite")
			}
			if _, err := b.Write([]byte("answer")); err != nil {
				t.Fatal(err)
			}
			b.Close()
			got, err = io.ReadAll(a)
			if err != nil || string(got) != "answer" {
				t.Fatalf("answer %q, %v", got, err)
			}
		})
	}
}

// A middle hop that forges an end's CLOSE cannot pass a cut-short stream
// off as complete: the end reads io.ErrUnexpectedEOF, not io.EOF.
func TestForgedCloseIsTruncation(t *testing.T) {
	n, _ := newNodes(t, 3, nil)
	connect(t, n[0], n[1])
	toC := connect(t, n[1], n[2])
	a, c := pair(t, n[0], n[2], 13, DialOptions{})
	defer a.Close()
	defer c.Close()
	exchange(t, a, c, 1000)
	var forged bool
	for _, ru := range n[1].r.Rules() {
		if ru.Kind == "forward" && ru.OutRemote == n[2].pk {
			if err := toC.WritePacket(transport.NewPacket(transport.PacketClose, ru.OutID, []byte{closeByEnd})); err != nil {
				t.Fatal(err)
			}
			forged = true
		}
	}
	if !forged {
		t.Fatal("no forward rule toward c")
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read after a forged close: %v", err)
	}
}

// ReadFrom and WriteTo (the gateway's copy paths: straight into and out of
// packets on 1 hop; from a socket, read with readv into packets and, on 2
// hops, sealed in place) carry a stream intact, end of stream included,
// also with a window that does not divide into packets.
func TestReadFromWriteTo(t *testing.T) {
	for _, hops := range []int{1, 2} {
		for _, src := range []string{"reader", "socket"} {
			for _, window := range []int{0, 100<<10 + 13} {
				t.Run(fmt.Sprintf("%d hops from a %s window %d", hops, src, window), func(t *testing.T) {
					n, _ := newNodes(t, hops+1, func(c *Config) { c.Window = window })
					for i := 0; i < hops; i++ {
						connect(t, n[i], n[i+1])
					}
					a, b := pair(t, n[0], n[hops], 15, DialOptions{})
					defer a.Close()
					defer b.Close()
					data := make([]byte, 8<<20+3)
					rand.Read(data)
					var r io.Reader = bytes.NewReader(data)
					if src == "socket" {
						r = socketOf(t, data)
					}
					errc := make(chan error, 1)
					go func() {
						_, err := a.ReadFrom(r)
						if err == nil {
							// A write after: it takes its place after
							// what ReadFrom sent (the stream's frames
							// stay in order).
							_, err = a.Write([]byte("end"))
						}
						if err == nil {
							err = a.CloseWrite()
						}
						errc <- err
					}()
					var got bytes.Buffer
					if _, err := b.WriteTo(&got); err != nil {
						t.Fatal(err)
					}
					if err := <-errc; err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got.Bytes(), append(data, "end"...)) {
						t.Fatalf("got %d bytes, want %d, or different", got.Len(), len(data)+3)
					}
				})
			}
		}
	}
}

// socketOf is the reading end of a loopback TCP connection whose other end
// writes data and closes.
func socketOf(t *testing.T, data []byte) net.Conn {
	t.Helper()
	w, r := loopback.Pair(t)
	go func() {
		w.Write(data)
		w.Close()
	}()
	return r
}

// A route from a visor to itself through a neighbour (out and back over
// one transport) carries pings and data both ways; without a neighbour it
// is refused with the reason.
func TestLoopRoute(t *testing.T) {
	n, _ := newNodes(t, 2, nil)
	connect(t, n[0], n[1])
	ctx := context.Background()
	res, err := n[0].r.Ping(ctx, n[0].pk, 3, DialOptions{Via: n[1].pk})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hops) != 2 || res.Hops[0].PK != n[1].pk || res.Hops[1].PK != n[0].pk || len(res.RTTs) != 3 {
		t.Fatalf("loop route: hops %+v, %d round trips", res.Hops, len(res.RTTs))
	}
	b, err := n[0].r.Bench(ctx, n[0].pk, 1<<20, DialOptions{Via: n[1].pk})
	if err != nil || b.Bytes != 1<<20 {
		t.Fatalf("loop route bench: %+v %v", b, err)
	}
	if _, err := n[0].r.Ping(ctx, n[0].pk, 1, DialOptions{}); err == nil || !strings.Contains(err.Error(), "neighbour") {
		t.Fatalf("a route to itself with no neighbour: %v", err)
	}
	if _, err := n[1].r.Ping(ctx, n[1].pk, 1, DialOptions{Via: n[1].pk}); err == nil {
		t.Fatal("a loop through itself was not refused")
	}
}
