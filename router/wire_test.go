package router

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
)

// tee is a TCP proxy in front of target that records what flows from the
// dialler to target.
type tee struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex // guards rec, conns
	rec   bytes.Buffer
	conns []net.Conn
}

func newTee(t *testing.T, target string) *tee {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &tee{ln: ln}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			x.mu.Lock()
			x.conns = append(x.conns, c, s)
			x.mu.Unlock()
			x.wg.Add(2)
			go func() {
				defer x.wg.Done()
				io.Copy(io.MultiWriter(s, x), c)
				s.Close()
			}()
			go func() {
				defer x.wg.Done()
				io.Copy(c, s)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		x.mu.Lock()
		for _, c := range x.conns {
			c.Close()
		}
		x.mu.Unlock()
		x.wg.Wait()
	})
	return x
}

func (x *tee) Write(p []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.rec.Write(p)
}

func (x *tee) recorded() []byte {
	x.mu.Lock()
	defer x.mu.Unlock()
	return bytes.Clone(x.rec.Bytes())
}

// What crosses the wire: a route's bytes are never in plaintext on any
// transport; on a 2-hop route the payload, sealed end to end, is not sealed
// again by the transports (the same ciphertext is on both links), while a
// 1-hop route's bytes are sealed by its transport.
func TestWireCarriesNoPlaintext(t *testing.T) {
	n, _ := newNodes(t, 3, nil)
	ab := newTee(t, n[0].table[n[1].pk]) // n[0] dials n[1] through ab
	n[0].table[n[1].pk] = ab.ln.Addr().String()
	bc := newTee(t, n[1].table[n[2].pk])
	n[1].table[n[2].pk] = bc.ln.Addr().String()
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
