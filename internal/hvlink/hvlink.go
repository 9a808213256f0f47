// Package hvlink is the wire of the hypervisor link (docs/protocol.md,
// "Hypervisor link") that both ends share: the yamux settings, and the
// direct transport a visor uses for a hypervisor with an address (TCP +
// Noise XK, for a LAN without a dmsg server). Over dmsg the link is a
// dmsg stream to port 46; directly it is a TCP connection on the
// hypervisor's link_addr. Either way the visor runs yamux as the server
// and answers its admin API on every stream the hypervisor opens.
package hvlink

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/internal/acceptor"
	"github.com/skyfleet/skywire/noise"
)

// Purpose is bound into the direct link's Noise prologue.
const Purpose = "skywire-hypervisor-link"

// HandshakeTimeout bounds a direct link's TCP dial and handshake.
const HandshakeTimeout = 10 * time.Second

// Yamux is the link's yamux configuration: keepalives every 5 s so that a
// dead end is noticed in seconds, and no logging of its own.
func Yamux() *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.KeepAliveInterval = 5 * time.Second
	cfg.LogOutput, cfg.Logger = io.Discard, nil
	return cfg
}

// Addr is the remote address of a direct link: the key its handshake
// proved, and where it came from.
type Addr struct {
	PK   cipher.PubKey
	Addr net.Addr
}

func (a Addr) Network() string { return "hvlink" }
func (a Addr) String() string  { return a.PK.Hex() + "@" + a.Addr.String() }

// RemoteKey is the key a link's remote address names: a dmsg stream's
// peer, or the key a direct link's handshake proved. Both ends use it.
func RemoteKey(a net.Addr) (cipher.PubKey, bool) {
	switch a := a.(type) {
	case dmsg.Addr:
		return a.PK, true
	case Addr:
		return a.PK, true
	}
	return cipher.PubKey{}, false
}

// conn is an authenticated direct link.
type conn struct {
	*noise.Conn
	remote Addr
}

func (c *conn) RemoteAddr() net.Addr { return c.remote }

// Dial connects to the hypervisor hpk at addr as sk's visor (the XK
// initiator: the hypervisor's key is proven before anything is sent).
func Dial(ctx context.Context, addr string, sk cipher.SecKey, hpk cipher.PubKey) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	nc, err := noise.Run(ctx, c, noise.Config{Pattern: noise.XK, Initiator: true, LocalSK: sk, RemotePK: hpk, Purpose: Purpose})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake with %s at %s: %w", hpk.Short(), addr, err)
	}
	return &conn{Conn: nc, remote: Addr{PK: hpk, Addr: c.RemoteAddr()}}, nil
}

// Limits on handshakes in progress.
var handshakeLimits = acceptor.Limits{PerSource: 16, Total: 256}

// Listener accepts direct links on a TCP listener: Accept returns
// connections whose handshake (XK responder, as sk) completed, each with
// an Addr naming the visor's key. Handshakes run concurrently, bounded per
// source address, so a slow or hostile client holds up no one.
type Listener struct {
	ln     net.Listener
	conns  chan net.Conn
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why serving ended; set before done closes
	once   sync.Once
}

// Listen serves handshakes on ln until Close.
func Listen(ln net.Listener, sk cipher.SecKey) *Listener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{ln: ln, conns: make(chan net.Conn), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		l.err = acceptor.Serve(ctx, ln, handshakeLimits, func(ctx context.Context, c net.Conn, done func()) {
			hctx, hcancel := context.WithTimeout(ctx, HandshakeTimeout)
			nc, err := noise.Run(hctx, c, noise.Config{Pattern: noise.XK, LocalSK: sk, Purpose: Purpose})
			hcancel()
			done()
			if err != nil {
				c.Close()
				return
			}
			lc := &conn{Conn: nc, remote: Addr{PK: nc.RemotePK(), Addr: c.RemoteAddr()}}
			select {
			case l.conns <- lc:
			case <-ctx.Done():
				lc.Close()
			}
		})
	}()
	return l
}

// Accept returns the next authenticated link.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		if l.err != nil {
			return nil, l.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting and waits for the handshakes in progress to end.
func (l *Listener) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.ln.Close()
	})
	<-l.done
	return nil
}

// Addr is the TCP address links arrive on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }
