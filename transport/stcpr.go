package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/ar"
	"github.com/skyfleet/skywire/svc/httpauth"
)

// STCPRNet is the stcpr network: TCP, with addresses from the address
// resolver (each visor binds its listening port there).
type STCPRNet struct {
	sk   cipher.SecKey
	ar   *ar.Client
	ln   net.Listener
	log  *zap.Logger
	seen atomic.Pointer[string] // the address the resolver saw us bind from
}

// Seen is the address the resolver saw this visor bind from ("" until it
// has): others dial it. A visor behind NAT sees an address that is not its
// own there.
func (n *STCPRNet) Seen() string {
	if p := n.seen.Load(); p != nil {
		return *p
	}
	return ""
}

// NewSTCPR listens on listen (":0" for any port) and will bind that port at
// the resolver.
func NewSTCPR(sk cipher.SecKey, resolver *ar.Client, listen string, log *zap.Logger) (*STCPRNet, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("stcpr: listen on %s: %w", listen, err)
	}
	return &STCPRNet{sk: sk, ar: resolver, ln: ln, log: log}, nil
}

// Type implements Network.
func (n *STCPRNet) Type() Type { return STCPR }

// Addr is the listening address.
func (n *STCPRNet) Addr() net.Addr { return n.ln.Addr() }

// Dial implements Network: resolve, then try the LAN addresses the resolver
// offers (same public IP) before the public one.
func (n *STCPRNet) Dial(ctx context.Context, remote cipher.PubKey) (Conn, error) {
	res, err := n.ar.ResolveSTCPR(ctx, remote)
	if httpauth.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %w", ErrNoAddress, err)
	}
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, addr := range append(res.LocalAddrs, res.Addr) {
		c, err := dialTCP(ctx, addr, n.sk, remote, STCPR)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// Close releases the listener (Serve does too; for a Network never served).
func (n *STCPRNet) Close() error {
	n.ln.Close()
	return nil
}

// Serve implements Network: it keeps the port bound at the resolver
// (rebinding every ar.STCPRRebind, and retrying with backoff) and accepts.
func (n *STCPRNet) Serve(ctx context.Context, accept func(Conn)) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.bindLoop(ctx)
	}()
	err := serveTCP(ctx, n.ln, n.sk, STCPR, accept, n.log)
	<-done
	return err
}

func (n *STCPRNet) bindLoop(ctx context.Context) {
	_, p, _ := net.SplitHostPort(n.ln.Addr().String())
	port, _ := strconv.Atoi(p)
	local := localAddrs()
	backoff := time.Second
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n.ar.UnbindSTCPR(uctx)
			cancel()
			return
		case <-time.After(wait):
		}
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		seen, err := n.ar.BindSTCPR(bctx, uint16(port), local)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				n.log.Warn("stcpr: binding at the address resolver failed", zap.NamedError("err", err), zap.Duration("retry_in", backoff))
			}
			wait, backoff = backoff, min(2*backoff, 30*time.Second)
			continue
		}
		if backoff > time.Second || wait == 0 {
			n.log.Info("stcpr: bound at the address resolver", zap.String("remote", seen))
		}
		n.seen.Store(&seen)
		wait, backoff = ar.STCPRRebind, time.Second
	}
}

// localAddrs lists this host's non-loopback unicast IPs (offered to peers
// behind the same public address).
func localAddrs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsMulticast() {
			continue
		}
		out = append(out, ipn.IP.String())
		if len(out) == 8 {
			break
		}
	}
	return out
}
