package transport

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/internal/testtool"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/ar"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// services runs a transport discovery, an address resolver (HTTP and UDP
// on one port), a dmsg discovery and a dmsg server on loopback.
type services struct {
	tpd, ar, dmsgd string
}

func startServices(t testing.TB) *services {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return ln
	}
	run := func(f func()) {
		wg.Add(1)
		go func() { defer wg.Done(); f() }()
	}
	s := &services{}
	tln, aln, dln, sln := listen(), listen(), listen(), listen()
	s.tpd, s.ar, s.dmsgd = "http://"+tln.Addr().String(), "http://"+aln.Addr().String(), "http://"+dln.Addr().String()
	run(func() { httpauth.Serve(ctx, tln, tpdisc.NewServer(store.NewMemory(10000), nil)) })
	resolver := ar.NewServer(store.NewMemory(10000), nil)
	pc, err := net.ListenPacket("udp", aln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	run(func() { httpauth.Serve(ctx, aln, resolver) })
	run(func() { resolver.ServeUDP(ctx, pc) })
	dd := dmsgdisc.NewServer(store.NewMemory(10000), nil)
	run(func() { httpauth.Serve(ctx, dln, dd) })
	spk, ssk := cipher.GenerateKeyPair()
	dd.TrustServers(spk)
	srv, err := dmsg.NewServer(dmsg.ServerConfig{SK: ssk, Discovery: s.dmsgd})
	if err != nil {
		t.Fatal(err)
	}
	run(func() { srv.Serve(ctx, sln) })
	return s
}

// peer is a transport manager with the networks asked for.
type peer struct {
	pk    cipher.PubKey
	sk    cipher.SecKey
	m     *Manager
	stcp  *STCPNet
	sudph *SUDPHNet
	table map[cipher.PubKey]string
	tpd   *tpdisc.Client

	mu  sync.Mutex
	got map[uint32][]byte
}

func (p *peer) received(rid uint32) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.got[rid]
}

func startPeer(t testing.TB, s *services, types ...Type) *peer {
	t.Helper()
	return startPeerWith(t, s, nil, types...)
}

// startPeerWith is startPeer with handler receiving the packets (nil: record
// them per route). With no transport discovery in s, nothing is registered.
func startPeerWith(t testing.TB, s *services, handler func(*Transport, Packet), types ...Type) *peer {
	t.Helper()
	pk, sk := cipher.GenerateKeyPair()
	p := &peer{pk: pk, sk: sk, table: map[cipher.PubKey]string{}, got: map[uint32][]byte{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var nets []Network
	for _, typ := range types {
		switch typ {
		case STCP:
			n, err := NewSTCP(sk, p.table, "127.0.0.1:0", zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			p.stcp = n
			nets = append(nets, n)
		case STCPR:
			n, err := NewSTCPR(sk, ar.NewClient(s.ar, sk), "127.0.0.1:0", zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			nets = append(nets, n)
		case SUDPH:
			n, err := NewSUDPH(sk, ar.NewClient(s.ar, sk), "127.0.0.1:0", zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			p.sudph = n
			nets = append(nets, n)
		case DMSG:
			c, err := dmsg.NewClient(dmsg.ClientConfig{SK: sk, Discovery: s.dmsgd})
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() { defer wg.Done(); c.Run(ctx) }()
			select {
			case <-c.Ready():
			case <-time.After(10 * time.Second):
				t.Fatal("dmsg client not ready")
			}
			n, err := NewDMSG(c)
			if err != nil {
				t.Fatal(err)
			}
			nets = append(nets, n)
		}
	}
	if handler == nil {
		handler = func(_ *Transport, pkt Packet) {
			p.mu.Lock()
			p.got[pkt.RouteID()] = append(p.got[pkt.RouteID()], pkt.Payload()...)
			p.mu.Unlock()
		}
	}
	cfg := Config{SK: sk, Networks: nets, Handler: handler}
	if s.tpd != "" {
		p.tpd = tpdisc.NewClient(s.tpd, sk)
		cfg.Discovery = p.tpd
	}
	p.m = NewManager(cfg)
	wg.Add(1)
	go func() { defer wg.Done(); p.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if p.tpd != nil {
			p.tpd.Close()
		}
	})
	return p
}

// waitResolvable waits until the resolver has p's address of type typ.
func waitResolvable(t testing.TB, s *services, p *peer, typ Type) {
	t.Helper()
	if typ == SUDPH {
		eventuallyTB(t, "sudph bound", func() bool { return p.sudph.Observed() != "" })
		return
	}
	if typ != STCPR {
		return
	}
	_, sk := cipher.GenerateKeyPair()
	c := ar.NewClient(s.ar, sk)
	defer c.Close()
	eventuallyTB(t, "stcpr bound", func() bool {
		_, err := c.ResolveSTCPR(context.Background(), p.pk)
		return err == nil
	})
}

func eventuallyTB(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEveryType(t *testing.T) {
	s := startServices(t)
	for _, typ := range Types {
		t.Run(string(typ), func(t *testing.T) {
			a, b := startPeer(t, s, typ), startPeer(t, s, typ)
			if typ == STCP {
				a.table[b.pk] = b.stcp.Addr().String()
			}
			waitResolvable(t, s, b, typ)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			tp, err := a.m.Dial(ctx, b.pk, typ)
			if err != nil {
				t.Fatal(err)
			}
			if tp.Type() != typ {
				t.Fatalf("type %s", tp.Type())
			}
			eventuallyTB(t, "b has the transport", func() bool { return len(b.m.Transports()) == 1 })
			tb := b.m.Transports()[0]

			big := bytes.Repeat([]byte("skywire"), MaxPayload/7)
			for i := 0; i < 50; i++ {
				if err := tp.WritePacket(NewPacket(PacketData, 3, big)); err != nil {
					t.Fatal(err)
				}
			}
			tb.WritePacket(NewPacket(PacketData, 4, []byte("pong")))
			eventuallyTB(t, "payloads arrive intact", func() bool {
				return len(b.received(3)) == 50*len(big) && string(a.received(4)) == "pong"
			})
			if !bytes.Equal(b.received(3)[:len(big)], big) {
				t.Fatal("payload corrupted")
			}

			// Registered in the transport discovery, signed by both edges.
			eventuallyTB(t, "registered", func() bool {
				se, err := a.tpd.Entry(context.Background(), tp.ID())
				return err == nil && se.Entry.Type == string(typ)
			})
			if _, err := a.m.Remove(tp.ID().String()); err != nil {
				t.Fatal(err)
			}
			eventuallyTB(t, "b notices the close", func() bool { return len(b.m.Transports()) == 0 })
			eventuallyTB(t, "deregistered", func() bool {
				_, err := a.tpd.Entry(context.Background(), tp.ID())
				return httpauth.IsNotFound(err)
			})
		})
	}
}

// With no type given, the dial tries direct types first.
func TestDialBestType(t *testing.T) {
	s := startServices(t)
	a, b := startPeer(t, s, STCP, STCPR, DMSG), startPeer(t, s, STCP, STCPR, DMSG)
	waitResolvable(t, s, b, STCPR)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// No stcp address for b: stcpr is the best that works.
	tp, err := a.m.Dial(ctx, b.pk, "")
	if err != nil || tp.Type() != STCPR {
		t.Fatalf("best type: %v %v", tp, err)
	}
}

func TestDialErrorsSayWhatFailed(t *testing.T) {
	s := startServices(t)
	a, b, c := startPeer(t, s, STCP, STCPR, DMSG), startPeer(t, s, STCP), startPeer(t, s, STCP)
	ctx := context.Background()
	nobody, _ := cipher.GenerateKeyPair()

	// stcp: no address.
	if _, err := a.m.Dial(ctx, b.pk, STCP); !errors.Is(err, ErrNoAddress) || !strings.Contains(err.Error(), "pk_table") {
		t.Fatalf("stcp without address: %v", err)
	}
	// stcp: the address is another visor's: the handshake fails, saying so.
	a.table[b.pk] = c.stcp.Addr().String()
	if _, err := a.m.Dial(ctx, b.pk, STCP); !errors.Is(err, noise.ErrHandshake) {
		t.Fatalf("stcp to the wrong visor: %v", err)
	}
	// stcp: nothing listens.
	dead := testtool.FreeAddr(t) // nothing listens there
	a.table[b.pk] = dead
	if _, err := a.m.Dial(ctx, b.pk, STCP); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("stcp to a closed port: %v", err)
	}
	// stcpr: the resolver does not know the key.
	if _, err := a.m.Dial(ctx, nobody, STCPR); !errors.Is(err, ErrNoAddress) {
		t.Fatalf("stcpr unknown key: %v", err)
	}
	// dmsg: the discovery does not know the key.
	if _, err := a.m.Dial(ctx, nobody, DMSG); !errors.Is(err, dmsgdisc.ErrNotFound) {
		t.Fatalf("dmsg unknown key: %v", err)
	}
	// A dial that cannot finish in time says it timed out.
	tctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	time.Sleep(2 * time.Millisecond)
	if _, err := a.m.Dial(tctx, nobody, DMSG); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}
}

// dmsg needs no inbound connection on either side.
func TestDMSGWithoutListeners(t *testing.T) {
	s := startServices(t)
	a, b := startPeer(t, s, DMSG), startPeer(t, s, DMSG)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := a.m.Dial(ctx, b.pk, ""); err != nil {
		t.Fatal(err)
	}
}
