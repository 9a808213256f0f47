package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// memHub is an in-memory network of memNets (the twin of a real Network:
// connections are net.Pipes that claim their peer's key).
type memHub struct {
	mu   sync.Mutex
	nets map[cipher.PubKey]*memNet
}

func newHub() *memHub { return &memHub{nets: map[cipher.PubKey]*memNet{}} }

type memNet struct {
	hub   *memHub
	pk    cipher.PubKey
	typ   Type
	conns chan Conn
	delay time.Duration // before a dial connects (to line up simultaneous dials)
}

func (h *memHub) net(pk cipher.PubKey, typ Type) *memNet {
	n := &memNet{hub: h, pk: pk, typ: typ, conns: make(chan Conn, 16)}
	h.mu.Lock()
	h.nets[pk] = n
	h.mu.Unlock()
	return n
}

func (h *memHub) remove(pk cipher.PubKey) {
	h.mu.Lock()
	delete(h.nets, pk)
	h.mu.Unlock()
}

// memConn is one end of a pipe; freezing the pair makes it a black hole
// (writes vanish, reads wait until this end closes, the peer's close never
// arrives), like a peer whose machine lost power.
type memConn struct {
	net.Conn
	remote    cipher.PubKey
	frozen    *atomic.Bool // shared by both ends
	stalled   atomic.Bool  // this end stops reading (its writer keeps going)
	closed    chan struct{}
	closeOnce sync.Once
}

func newMemConn(c net.Conn, remote cipher.PubKey, frozen *atomic.Bool) *memConn {
	return &memConn{Conn: c, remote: remote, frozen: frozen, closed: make(chan struct{})}
}

func (c *memConn) RemotePK() cipher.PubKey { return c.remote }

func (c *memConn) Write(p []byte) (int, error) {
	if c.frozen.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.stalled.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if c.frozen.Load() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *memConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

func (n *memNet) Type() Type { return n.typ }

func (n *memNet) Dial(ctx context.Context, remote cipher.PubKey) (Conn, error) {
	if n.delay > 0 {
		time.Sleep(n.delay)
	}
	n.hub.mu.Lock()
	peer := n.hub.nets[remote]
	n.hub.mu.Unlock()
	if peer == nil {
		return nil, fmt.Errorf("%w: not on the hub", ErrNoAddress)
	}
	a, b := net.Pipe()
	frozen := new(atomic.Bool)
	select {
	case peer.conns <- newMemConn(b, n.pk, frozen):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return newMemConn(a, remote, frozen), nil
}

func (n *memNet) Serve(ctx context.Context, accept func(Conn)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-n.conns:
			wg.Add(1)
			go func() {
				defer wg.Done()
				accept(c)
			}()
		}
	}
}
