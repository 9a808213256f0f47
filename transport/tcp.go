package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/noise"
)

// maxPendingHandshakes bounds handshakes in progress per listener, so a
// flood of half-open connections cannot exhaust the visor.
const maxPendingHandshakes = 64

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
// ends. It closes ln and waits for its goroutines.
func serveTCP(ctx context.Context, ln net.Listener, sk cipher.SecKey, typ Type, accept func(Conn), log *zap.Logger) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	pending := make(chan struct{}, maxPendingHandshakes)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("%s accept: %w", typ, err)
		}
		select {
		case pending <- struct{}{}:
		default:
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tuneTCP(c)
			hctx, cancel := context.WithTimeout(ctx, noise.DefaultHandshakeTimeout)
			nc, err := noise.Run(hctx, c, noise.Config{Pattern: noise.XK, LocalSK: sk, Purpose: purpose(typ)})
			cancel()
			<-pending
			if err != nil {
				log.Debug("handshake failed", zap.String("type", string(typ)), zap.String("remote", c.RemoteAddr().String()), zap.NamedError("err", err))
				c.Close()
				return
			}
			accept(nc)
		}()
	}
}

// STCPNet is the stcp network: peers' addresses come from a static table.
type STCPNet struct {
	sk    cipher.SecKey
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

// Dial implements Network.
func (n *STCPNet) Dial(ctx context.Context, remote cipher.PubKey) (Conn, error) {
	addr, ok := n.table[remote]
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
