package transport

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/acceptor"
	"github.com/skyfleet/skywire/noise"
)

// Pending handshakes are bounded per source address and in all, and a
// responder gives a handshake handshakeTimeout: a flood of half-open
// connections from one host holds maxPendingPerSource slots for a few
// seconds at most, and an honest peer still gets in.
const (
	maxPendingHandshakes = 256
	maxPendingPerSource  = 8
	handshakeTimeout     = 5 * time.Second
)

// purpose binds a transport type into the Noise prologue.
func purpose(t Type) string { return "transport " + string(t) }

// dialTCP connects to addr and runs the XK handshake as the initiator.
func dialTCP(ctx context.Context, addr string, sk cipher.SecKey, remote cipher.PubKey, typ Type) (Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tuneTCP(c)
	nc, err := noise.Run(ctx, c, noise.Config{Pattern: noise.XK, Initiator: true, LocalSK: sk, RemotePK: remote, Purpose: purpose(typ)})
	if err != nil {
		c.Close()
		return nil, err
	}
	return nc, nil
}

func tuneTCP(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(15 * time.Second)
	}
}

// serveTCP accepts on ln, runs the XK handshake as the responder and hands
// each authenticated connection to accept (on its own goroutine), until ctx
// ends (nil) or ln fails for good (the error). It closes ln and waits for
// its goroutines.
func serveTCP(ctx context.Context, ln net.Listener, sk cipher.SecKey, typ Type, accept func(Conn), log *zap.Logger) error {
	err := acceptor.Serve(ctx, ln, acceptor.Limits{PerSource: maxPendingPerSource, Total: maxPendingHandshakes}, func(ctx context.Context, c net.Conn, done func()) {
		tuneTCP(c)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		nc, err := noise.Run(hctx, c, noise.Config{Pattern: noise.XK, LocalSK: sk, Purpose: purpose(typ)})
		cancel()
		done()
		if err != nil {
			log.Debug("handshake failed", zap.String("type", string(typ)), zap.String("remote", c.RemoteAddr().String()), zap.NamedError("err", err))
			c.Close()
			return
		}
		accept(nc)
	})
	if err != nil {
		return fmt.Errorf("%s: accepting on %s: %w", typ, ln.Addr(), err)
	}
	return nil
}

// STCPNet is the stcp network: peers' addresses come from a static table.
type STCPNet struct {
	sk    cipher.SecKey
	mu    sync.RWMutex // guards table
	table map[cipher.PubKey]string
	ln    net.Listener // nil: dial only
	log   *zap.Logger
}

// NewSTCP returns the stcp network. A non-empty listen address is opened
// now, so a busy port is reported at once.
func NewSTCP(sk cipher.SecKey, table map[cipher.PubKey]string, listen string, log *zap.Logger) (*STCPNet, error) {
	n := &STCPNet{sk: sk, table: table, log: log}
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("stcp: listen on %s: %w", listen, err)
		}
		n.ln = ln
	}
	return n, nil
}

// Type implements Network.
func (n *STCPNet) Type() Type { return STCP }

// Addr is the listening address (nil if not listening).
func (n *STCPNet) Addr() net.Addr {
	if n.ln == nil {
		return nil
	}
	return n.ln.Addr()
}

// SetTable replaces stcp.pk_table (a config reload): later dials use it;
// transports up stay up.
func (n *STCPNet) SetTable(table map[cipher.PubKey]string) {
	n.mu.Lock()
	n.table = table
	n.mu.Unlock()
}

// Dial implements Network.
func (n *STCPNet) Dial(ctx context.Context, remote cipher.PubKey) (Conn, error) {
	n.mu.RLock()
	addr, ok := n.table[remote]
	n.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w in stcp.pk_table: add \"%s\": \"host:port\" to it", ErrNoAddress, remote.Hex())
	}
	return dialTCP(ctx, addr, n.sk, remote, STCP)
}

// Close releases the listener (Serve does too; for a Network never served).
func (n *STCPNet) Close() error {
	if n.ln != nil {
		n.ln.Close()
	}
	return nil
}

// Serve implements Network.
func (n *STCPNet) Serve(ctx context.Context, accept func(Conn)) error {
	if n.ln == nil {
		<-ctx.Done()
		return nil
	}
	return serveTCP(ctx, n.ln, n.sk, STCP, accept, n.log)
}
