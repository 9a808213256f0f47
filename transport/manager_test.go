package transport

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfleet/skywire/cipher"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is a manager on a memHub, recording the packets it is handed.
type node struct {
	pk   cipher.PubKey
	sk   cipher.SecKey
	m    *Manager
	net  *memNet
	stop func()

	mu  sync.Mutex
	got []Packet
}

func (n *node) packets() []Packet {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Packet(nil), n.got...)
}

func startNode(t *testing.T, hub *memHub, sk cipher.SecKey, mod func(*Config)) *node {
	t.Helper()
	if sk.IsZero() {
		_, sk = cipher.GenerateKeyPair()
	}
	n := &node{pk: sk.PubKey(), sk: sk}
	n.net = hub.net(n.pk, STCP)
	cfg := Config{SK: sk, Networks: []Network{n.net}, Keepalive: 100 * time.Millisecond,
		Handler: func(_ *Transport, p Packet) {
			n.mu.Lock()
			n.got = append(n.got, append(Packet(nil), p...))
			n.mu.Unlock()
		}}
	if mod != nil {
		mod(&cfg)
	}
	n.m = NewManager(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.m.Run(ctx)
		close(done)
	}()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			hub.remove(n.pk)
			cancel()
			<-done
		})
	}
	t.Cleanup(n.stop)
	return n
}

// eventually polls cond (a hang guard, not a speed requirement).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dial(t *testing.T, from, to *node) *Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tp, err := from.m.Dial(ctx, to.pk, STCP)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestDialSettlesAndCarriesPackets(t *testing.T) {
	hub := newHub()
	a, b := startNode(t, hub, cipher.SecKey{}, nil), startNode(t, hub, cipher.SecKey{}, nil)
	tp := dial(t, a, b)
	if !tp.Dialer() || tp.Remote() != b.pk || tp.Type() != STCP {
		t.Fatalf("transport: dialer %v remote %s", tp.Dialer(), tp.Remote().Short())
	}
	eventually(t, "b has the transport", func() bool { return len(b.m.Transports()) == 1 })
	tb := b.m.Transports()[0]
	if tb.ID() != tp.ID() || tb.Dialer() || tb.Remote() != a.pk {
		t.Fatal("b's side does not match")
	}
	// Both edges signed the discovery entry.
	se := tb.Entry()
	if err := se.Verify(); err != nil {
		t.Fatalf("entry: %v", err)
	}

	payload := []byte("route 7 payload")
	if err := tp.WritePacket(NewPacket(PacketData, 7, payload)); err != nil {
		t.Fatal(err)
	}
	tb.WritePacket(NewPacket(PacketSetup, 9, []byte("back")))
	eventually(t, "packets delivered", func() bool { return len(b.packets()) == 1 && len(a.packets()) == 1 })
	p := b.packets()[0]
	if p.Type() != PacketData || p.RouteID() != 7 || !bytes.Equal(p.Payload(), payload) {
		t.Fatalf("b got %v %d %q", p.Type(), p.RouteID(), p.Payload())
	}
	if q := a.packets()[0]; q.Type() != PacketSetup || q.RouteID() != 9 {
		t.Fatalf("a got %v %d", q.Type(), q.RouteID())
	}
	eventually(t, "RTT measured", func() bool { return tp.RTT() > 0 && tb.RTT() > 0 })
	if tp.Sent() == 0 || tb.Received() < uint64(HeaderSize+len(payload)) {
		t.Fatalf("counters: sent %d received %d", tp.Sent(), tb.Received())
	}
}

func TestOneTransportPerPeerAndType(t *testing.T) {
	hub := newHub()
	a, b := startNode(t, hub, cipher.SecKey{}, nil), startNode(t, hub, cipher.SecKey{}, nil)
	var wg sync.WaitGroup
	ids := make(chan string, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids <- dial(t, a, b).ID().String()
		}()
	}
	wg.Wait()
	close(ids)
	first := ""
	for id := range ids {
		if first == "" {
			first = id
		} else if id != first {
			t.Fatal("concurrent dials made two transports")
		}
	}
	// The other side dialling back gets the same one.
	eventually(t, "b has it", func() bool { return len(b.m.Transports()) == 1 })
	if back := dial(t, b, a); back.ID().String() != first {
		t.Fatal("dialling back made a second transport")
	}
	if len(a.m.Transports()) != 1 || len(b.m.Transports()) != 1 {
		t.Fatalf("transports: a %d b %d", len(a.m.Transports()), len(b.m.Transports()))
	}
}

func TestSimultaneousDial(t *testing.T) {
	for i := 0; i < 20; i++ {
		hub := newHub()
		a, b := startNode(t, hub, cipher.SecKey{}, nil), startNode(t, hub, cipher.SecKey{}, nil)
		// Both dials connect before either settles.
		a.net.delay, b.net.delay = 20*time.Millisecond, 20*time.Millisecond
		var ta, tb *Transport
		var ea, eb error
		var wg sync.WaitGroup
		wg.Add(2)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		go func() { defer wg.Done(); ta, ea = a.m.Dial(ctx, b.pk, STCP) }()
		go func() { defer wg.Done(); tb, eb = b.m.Dial(ctx, a.pk, STCP) }()
		wg.Wait()
		cancel()
		if ea != nil || eb != nil {
			t.Fatalf("round %d: %v / %v", i, ea, eb)
		}
		if ta.ID() != tb.ID() {
			t.Fatalf("round %d: different transports", i)
		}
		// The kept connection is the lower key's dial.
		lowerDialled := a.pk.Less(b.pk) == ta.Dialer()
		if !lowerDialled || ta.Dialer() == tb.Dialer() {
			t.Fatalf("round %d: a dialer %v, b dialer %v, a lower %v", i, ta.Dialer(), tb.Dialer(), a.pk.Less(b.pk))
		}
		time.Sleep(20 * time.Millisecond)
		if len(a.m.Transports()) != 1 || len(b.m.Transports()) != 1 || ta.Err() != nil || tb.Err() != nil {
			t.Fatalf("round %d: a %d b %d (%v %v)", i, len(a.m.Transports()), len(b.m.Transports()), ta.Err(), tb.Err())
		}
		a.stop()
		b.stop()
	}
}

func TestDeadPeerNoticed(t *testing.T) {
	hub := newHub()
	a, b := startNode(t, hub, cipher.SecKey{}, nil), startNode(t, hub, cipher.SecKey{}, nil)
	tp := dial(t, a, b)
	tp.conn.(*memConn).frozen.Store(true) // the peer's machine vanished: no FIN, no RST
	select {
	case <-tp.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a dead peer was never noticed")
	}
	if !errors.Is(tp.Err(), ErrDead) {
		t.Fatalf("closed with %v, want ErrDead", tp.Err())
	}
	eventually(t, "removed from the manager", func() bool { return len(a.m.Transports()) == 0 })
}

// A peer that stops reading while we send does not hang our writer: the
// write times out and the transport closes.
func TestStalledPeerWhileSending(t *testing.T) {
	hub := newHub()
	slow := func(c *Config) { c.WriteTimeout = 300 * time.Millisecond; c.Keepalive = time.Hour }
	a, b := startNode(t, hub, cipher.SecKey{}, slow), startNode(t, hub, cipher.SecKey{}, slow)
	tp := dial(t, a, b)
	eventually(t, "b has it", func() bool { return len(b.m.Transports()) == 1 })
	b.m.Transports()[0].conn.(*memConn).stalled.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pkt := NewPacket(PacketData, 1, make([]byte, 1000))
		for tp.WritePacket(pkt) == nil {
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer hung on a peer that stopped reading")
	}
	<-tp.Done()
	if !errors.Is(tp.Err(), os.ErrDeadlineExceeded) {
		t.Fatalf("closed with %v, want a write deadline", tp.Err())
	}
}

func TestPersistentRedial(t *testing.T) {
	hub := newHub()
	_, bsk := cipher.GenerateKeyPair()
	bpk := bsk.PubKey()
	a := startNode(t, hub, cipher.SecKey{}, nil)
	a.m.SetPersistent([]Persistent{{PK: bpk, Type: STCP}})

	// b is not there yet: a keeps trying; then b appears.
	time.Sleep(300 * time.Millisecond)
	b := startNode(t, hub, bsk, nil)
	eventually(t, "persistent transport up", func() bool { return len(a.m.Transports()) == 1 && len(b.m.Transports()) == 1 })

	// b dies and comes back with the same key: a notices and redials.
	b.stop()
	eventually(t, "a notices b is gone", func() bool { return len(a.m.Transports()) == 0 })
	b2 := startNode(t, hub, bsk, nil)
	eventually(t, "persistent transport back", func() bool { return len(a.m.Transports()) == 1 && len(b2.m.Transports()) == 1 })
}

func TestRemoveAndErrors(t *testing.T) {
	hub := newHub()
	a, b := startNode(t, hub, cipher.SecKey{}, nil), startNode(t, hub, cipher.SecKey{}, nil)
	tp := dial(t, a, b)
	if _, err := a.m.Transport("zz"); err == nil || !strings.Contains(err.Error(), "ls-tp") {
		t.Fatalf("unknown id: %v", err)
	}
	got, err := a.m.Remove(tp.ID().String()[:6])
	if err != nil || got != tp {
		t.Fatalf("remove by prefix: %v", err)
	}
	<-tp.Done()
	eventually(t, "both sides drop it", func() bool { return len(a.m.Transports()) == 0 && len(b.m.Transports()) == 0 })

	ctx := context.Background()
	if _, err := a.m.Dial(ctx, b.pk, SUDPH); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("unconfigured type: %v", err)
	}
	if _, err := a.m.Dial(ctx, a.pk, STCP); err == nil {
		t.Fatal("dialled itself")
	}
	nobody, _ := cipher.GenerateKeyPair()
	if _, err := a.m.Dial(ctx, nobody, STCP); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("unknown peer: %v", err)
	}
	if _, err := a.m.Dial(ctx, nobody, ""); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("unknown peer, any type: %v", err)
	}
}

func TestMaxTransports(t *testing.T) {
	hub := newHub()
	a := startNode(t, hub, cipher.SecKey{}, func(c *Config) { c.MaxTransports = 1 })
	b, c := startNode(t, hub, cipher.SecKey{}, nil), startNode(t, hub, cipher.SecKey{}, nil)
	dial(t, b, a)
	_, err := c.m.Dial(context.Background(), a.pk, STCP)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "too many transports") {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestPacketParsing(t *testing.T) {
	var stream []byte
	for i := 0; i < 3; i++ {
		stream = append(stream, NewPacket(PacketData, uint32(i+1), bytes.Repeat([]byte{byte(i)}, i*100))...)
	}
	var got []uint32
	n, err := parsePackets(stream[:len(stream)-1], func(p Packet) { got = append(got, p.RouteID()) })
	if err != nil || len(got) != 2 || n != HeaderSize*2+100 {
		t.Fatalf("partial stream: %v %v %d", got, err, n)
	}
	if _, err := parsePackets([]byte{99, 0, 0, 0, 1, 0, 0}, func(Packet) {}); err == nil {
		t.Fatal("unknown type accepted")
	}
}

func FuzzParsePackets(f *testing.F) {
	f.Add([]byte(NewPacket(PacketPing, 0, []byte("12345678"))))
	f.Add(append([]byte(NewPacket(PacketData, 5, []byte("x"))), 1, 2, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		n, _ := parsePackets(b, func(p Packet) {
			if len(p) != HeaderSize+len(p.Payload()) || p.Type() > maxPacketType {
				t.Fatal("bad packet handed out")
			}
			total += len(p)
		})
		if n != total || n > len(b) {
			t.Fatalf("consumed %d, packets %d, input %d", n, total, len(b))
		}
	})
}
