package router

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// proxy is a TCP proxy in front of target that records what flows from the
// dialler to target, and can hold that direction still.
type proxy struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex // guards rec, conns, paused
	rec    bytes.Buffer
	conns  []net.Conn
	paused *sync.WaitGroup // non-nil while paused: released by resume
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &proxy{ln: ln}
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
				io.Copy(io.MultiWriter(s, recorder{x}), gated{x, c})
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
		x.resume()
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

// addr is where to dial target through the proxy.
func (x *proxy) addr() string { return x.ln.Addr().String() }

// recorded is what went to target so far.
func (x *proxy) recorded() []byte {
	x.mu.Lock()
	defer x.mu.Unlock()
	return bytes.Clone(x.rec.Bytes())
}

// pause stops forwarding toward target (after the read in progress).
func (x *proxy) pause() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.paused == nil {
		x.paused = new(sync.WaitGroup)
		x.paused.Add(1)
	}
}

// resume forwards toward target again.
func (x *proxy) resume() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.paused != nil {
		x.paused.Done()
		x.paused = nil
	}
}

type recorder struct{ x *proxy }

func (r recorder) Write(p []byte) (int, error) {
	r.x.mu.Lock()
	defer r.x.mu.Unlock()
	return r.x.rec.Write(p)
}

type gated struct {
	x *proxy
	r io.Reader
}

func (g gated) Read(p []byte) (int, error) {
	g.x.mu.Lock()
	w := g.x.paused
	g.x.mu.Unlock()
	if w != nil {
		w.Wait()
	}
	return g.r.Read(p)
}
