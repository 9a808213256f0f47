package router

import (
	"bytes"
	"crypto/rand"
	"io"
	"testing"
)

// What crosses the wire: a route's bytes are never in plaintext on any
// transport; on a 2-hop route the payload, sealed end to end, is not sealed
// again by the transports (the same ciphertext is on both links), while a
// 1-hop route's bytes are sealed by its transport.
func TestWireCarriesNoPlaintext(t *testing.T) {
	n, _ := newNodes(t, 3, nil)
	ab := newProxy(t, n[0].table[n[1].pk]) // n[0] dials n[1] through ab
	n[0].table[n[1].pk] = ab.addr()
	bc := newProxy(t, n[1].table[n[2].pk])
	n[1].table[n[2].pk] = bc.addr()
	connect(t, n[0], n[1])
	connect(t, n[1], n[2])

	send := func(a, b *Conn) []byte {
		defer a.Close()
		defer b.Close()
		data := make([]byte, 1<<20)
		rand.Read(data)
		go a.Write(data)
		got := make([]byte, len(data))
		if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("route lost data: %v", err)
		}
		return data
	}
	inPlain := func(wire, data []byte) bool {
		for off := 0; off+64 <= len(data); off += len(data) / 16 {
			if bytes.Contains(wire, data[off:off+64]) {
				return true
			}
		}
		return false
	}

	one := send(pair(t, n[0], n[1], 5, DialOptions{}))
	if inPlain(ab.recorded(), one) {
		t.Fatal("a 1-hop route's bytes crossed its transport in plaintext")
	}
	two := send(pair(t, n[0], n[2], 6, DialOptions{MinHops: 2}))
	wab, wbc := ab.recorded(), bc.recorded()
	if inPlain(wab, two) || inPlain(wbc, two) {
		t.Fatal("a 2-hop route's bytes crossed a transport in plaintext")
	}
	// The middle of what crossed B→C (DATA of the 2-hop route, nearly all of
	// it end-to-end ciphertext) also crossed A→B as it is.
	same := 0
	for i := 1; i <= 8; i++ {
		off := len(wbc) * i / 10
		if bytes.Contains(wab, wbc[off:off+256]) {
			same++
		}
	}
	if same < 6 {
		t.Fatalf("%d of 8 samples of the B→C stream found on A→B: the transports sealed the end-to-end ciphertext again", same)
	}
}
