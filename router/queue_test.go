package router

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/transport"
)

// Tiny DATA packets that the app does not read yet share buffers at the
// receiving end: memory follows the bytes, not the packet count.
func TestSmallPacketsShareBuffers(t *testing.T) {
	n, _ := newNodes(t, 2, nil)
	connect(t, n[0], n[1])
	a, b := pair(t, n[0], n[1], 5, DialOptions{})
	defer a.Close()
	defer b.Close()
	const count = 100_000
	want := make([]byte, count)
	for i := range want {
		want[i] = byte(i)
		if _, err := a.Write(want[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	rc := b.raw
	eventually(t, "all bytes arrived", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.rbytes == count
	})
	rc.mu.Lock()
	held := len(rc.rq)
	rc.mu.Unlock()
	if held > 3 {
		t.Fatalf("%d one-byte packets are held in %d buffers", count, held)
	}
	got := make([]byte, count)
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back: %v", err)
	}
}

// A forwarding hop whose next link is stalled holds a bounded queue per
// route, whatever the sender does: control floods collapse to one packet
// of each type, tiny DATA packets share buffers, and a sender that ignores
// its credit window has its route closed (both ends told).
func TestHopQueueBounded(t *testing.T) {
	// The stall below must not look like a dead peer, however slow the
	// machine (make test runs browsers beside this): keepalives and the
	// write timeout are far longer than the test.
	n, _ := newNodes(t, 3, nil, func(c *transport.Config) { c.Keepalive, c.WriteTimeout = time.Minute, 5*time.Minute })
	g := newProxy(t, n[1].table[n[2].pk])
	n[1].table[n[2].pk] = g.addr()
	tpAB := connect(t, n[0], n[1])
	connect(t, n[1], n[2])
	a, c := pair(t, n[0], n[2], 5, DialOptions{MinHops: 2})
	defer a.Close()
	defer c.Close()

	a.raw.mu.Lock()
	rid := a.raw.outID
	a.raw.mu.Unlock()
	// B's link to C and the id the route has on it.
	var bc *link
	var bid uint32
	n[1].r.mu.Lock()
	for _, ru := range n[1].r.rules {
		if ru.kind == ruleForward && ru.in.Remote() == n[0].pk {
			bc, bid = n[1].r.links[ru.out], ru.outID
		}
	}
	n[1].r.mu.Unlock()
	if bc == nil {
		t.Fatal("no forward rule at B")
	}
	queued := func() (pkts, data int) {
		bc.mu.Lock()
		defer bc.mu.Unlock()
		if q := bc.queues[bid]; q != nil {
			return len(q.pkts), q.data
		}
		return 0, 0
	}

	// Stall B→C: fill the TCP buffers between B and the gate, until B's
	// link writer is stuck and packets wait in its queue.
	g.pause()
	filler := make([]byte, transport.MaxPayload)
	for sent := 0; ; sent += len(filler) {
		if _, d := queued(); d >= DefaultWindow/4 {
			break
		}
		if sent > 64<<20 {
			t.Fatal("B's link never backed up")
		}
		if err := tpAB.WritePacket(transport.NewPacket(transport.PacketData, rid, filler)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	// Fillers still in flight between A and B land in the queue too: count
	// from when it has stopped growing.
	before, _ := queued()
	for still, deadline := 0, time.Now().Add(10*time.Second); still < 6 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if p, _ := queued(); p != before {
			before, still = p, 0
		} else {
			still++
		}
	}

	for i := 0; i < 10_000; i++ {
		tpAB.WritePacket(transport.NewPacket(transport.PacketPing, rid, make([]byte, 8)))
		tpAB.WritePacket(transport.NewPacket(transport.PacketData, rid, []byte{byte(i)}))
	}
	time.Sleep(200 * time.Millisecond) // B's reader takes them all
	if pkts, data := queued(); pkts > before+3 {
		t.Fatalf("B holds %d packets (%d data bytes) for one route after a flood of 20000 small ones (%d before)", pkts, data, before)
	}

	// Now past the window: B closes the route.
	for sent := 0; sent < DefaultWindow; sent += len(filler) {
		if err := tpAB.WritePacket(transport.NewPacket(transport.PacketData, rid, filler)); err != nil {
			t.Fatal(err)
		}
	}
	a.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, ErrRouteClosed) || !strings.Contains(err.Error(), closeReason(closeProtocol)) {
		t.Fatalf("the sender's end: %v, want the route closed for a protocol error", err)
	}
	n[1].r.mu.Lock()
	left := len(n[1].r.rules)
	n[1].r.mu.Unlock()
	if left != 0 {
		t.Fatalf("B kept %d rules of the closed route", left)
	}
	if p, _ := queued(); p > 1 {
		t.Fatalf("B still holds %d packets of the closed route", p)
	}
	g.resume()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, c); err == nil {
		t.Fatal("the receiving end saw a clean end of a route closed for a protocol error")
	}
}

// How a route's queue on a link collapses what waits in it.
func TestLinkQueueMerges(t *testing.T) {
	l := newLink(nil, DefaultWindow) // never run: packets stay queued
	put := func(typ transport.PacketType, payload []byte, e2e bool) {
		b := getPbuf()
		b.n = len(transport.MakePacket(b.b, typ, 9, copy(b.b[transport.HeaderSize:], payload)))
		b.e2e = e2e
		if err := l.enqueue(9, b); err != nil {
			t.Fatal(err)
		}
	}
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	be64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	put(transport.PacketWindowUpdate, be32(100), false)
	put(transport.PacketPing, be64(1), false)
	put(transport.PacketData, []byte("a"), true)
	put(transport.PacketWindowUpdate, be32(200), false)
	put(transport.PacketPing, be64(2), false)
	put(transport.PacketData, []byte("bc"), true)
	put(transport.PacketKeepalive, nil, false)
	put(transport.PacketKeepalive, nil, false)
	put(transport.PacketData, nil, true) // half-close: never merged
	put(transport.PacketData, []byte("d"), true)
	put(transport.PacketData, []byte("e"), false) // other protection: not merged
	put(transport.PacketSetupOK, []byte("s1"), false)
	put(transport.PacketSetupOK, []byte("s2"), false) // never merged: not idempotent
	put(transport.PacketClose, []byte{1}, false)
	put(transport.PacketClose, []byte{1}, false)
	var got []string
	for _, b := range l.queues[9].pkts {
		p := b.packet()
		got = append(got, fmt.Sprintf("%v:%x:%v", p.Type(), p.Payload(), b.e2e))
	}
	want := []string{
		"window-update:0000012c:false", "ping:0000000000000002:false", "data:616263:true",
		"keepalive::false", "data::true", "data:64:true", "data:65:false",
		"setup-ok:7331:false", "setup-ok:7332:false", "close:01:false", "close:01:false",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("queue\n got %v\nwant %v", got, want)
	}
	if d := l.queues[9].data; d != 5 {
		t.Fatalf("queue counts %d data bytes, want 5", d)
	}
	// What is never coalesced is bounded.
	for i := 4; i < maxControl; i++ {
		put(transport.PacketSetupErr, []byte("x"), false)
	}
	b := getPbuf()
	b.n = len(transport.MakePacket(b.b, transport.PacketSetupErr, 9, 0))
	if err := l.enqueue(9, b); !errors.Is(err, errCtrlFull) {
		t.Fatalf("control packet past maxControl: %v", err)
	}
	l.close()
}
