package transport

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// Idle connections from one host (127.0.0.2) hold at most its share of
// handshake slots: an honest peer (127.0.0.1) still sets up transports
// while 300 of them wait.
func TestHandshakeFloodFromOneHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("binds 127.0.0.2 (Linux loopback)")
	}
	pkA, skA := cipher.GenerateKeyPair()
	pkB, skB := cipher.GenerateKeyPair()
	netB, err := NewSTCP(skB, map[cipher.PubKey]string{}, "127.0.0.1:0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	netA, err := NewSTCP(skA, map[cipher.PubKey]string{pkB: netB.Addr().String()}, "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	mA := NewManager(Config{SK: skA, Networks: []Network{netA}})
	mB := NewManager(Config{SK: skB, Networks: []Network{netB}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { mA.Run(ctx); done <- struct{}{} }()
	go func() { mB.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()

	loopback.Idle(t, netB.Addr().String(), 300)
	ok := 0
	for range 10 {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		tp, err := mA.Dial(dctx, pkB, STCP)
		dcancel()
		if err != nil {
			t.Logf("honest dial during the flood: %v", err)
			continue
		}
		ok++
		if _, err := mA.Remove(tp.ID().String()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "B forgets the transport", func() bool { return mB.Find(pkA, STCP) == nil })
	}
	if ok != 10 {
		t.Fatalf("%d of 10 honest transports set up during the flood", ok)
	}
}

// A listener that fails for good stops the manager with an error naming it
// (it must not die silently while its address is advertised).
func TestDeadListenerStopsManager(t *testing.T) {
	_, sk := cipher.GenerateKeyPair()
	n, err := NewSTCP(sk, nil, "127.0.0.1:0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(Config{SK: sk, Networks: []Network{n}})
	errc := make(chan error, 1)
	go func() { errc <- m.Run(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	n.ln.Close() // as if accept failed for good
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "stcp") {
			t.Fatalf("Run returned %v, want an error naming the stcp listener", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the manager ran on with a dead listener")
	}
}

// The transport discovery restarts and loses every entry: the dialer
// re-registers its transport by itself, with both edges' fresh signatures
// (the first registration's would be refused once over a minute old).
func TestDiscoveryRestartReregisters(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			httpauth.Serve(ctx, ln, tpdisc.NewServer(store.NewMemory(1000), nil))
		}()
		return func() { cancel(); <-done }
	}
	stop := serve(ln)
	peers := make([]*Manager, 2)
	var nets [2]*STCPNet
	var pks [2]cipher.PubKey
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	defer func() { cancel(); <-done; <-done }()
	table := map[cipher.PubKey]string{}
	for i := range peers {
		pk, sk := cipher.GenerateKeyPair()
		pks[i] = pk
		if nets[i], err = NewSTCP(sk, table, "127.0.0.1:0", zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		table[pk] = nets[i].Addr().String()
		peers[i] = NewManager(Config{SK: sk, Networks: []Network{nets[i]}, Discovery: tpdisc.NewClient("http://"+addr, sk), Heartbeat: 100 * time.Millisecond})
		go func() { peers[i].Run(ctx); done <- struct{}{} }()
	}
	tp, err := peers[0].Dial(ctx, pks[1], STCP)
	if err != nil {
		t.Fatal(err)
	}
	reader := tpdisc.NewClient("http://"+addr, mustKey(t))
	defer reader.Close()
	listed := func() *tpdisc.SignedEntry {
		se, err := reader.Entry(ctx, tp.ID())
		if err != nil {
			return nil
		}
		return se
	}
	eventually(t, "the transport is registered", func() bool { return listed() != nil })
	first := listed().Entry.Timestamp

	// Restart: a new, empty discovery on the same address.
	stop()
	time.Sleep(5 * time.Millisecond) // a distinct timestamp
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Fatal(err)
	}
	stop = serve(ln)
	defer stop()
	eventually(t, "the transport is registered again", func() bool { return listed() != nil })
	se := listed()
	if se.Entry.Timestamp <= first {
		t.Fatalf("re-registered with the first signatures (timestamp %d, first %d)", se.Entry.Timestamp, first)
	}
	if err := se.Verify(); err != nil {
		t.Fatal(err)
	}
}

func mustKey(t *testing.T) cipher.SecKey {
	t.Helper()
	_, sk := cipher.GenerateKeyPair()
	return sk
}
