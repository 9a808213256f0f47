// Package skysocks is the SOCKS5 proxy over Skywire.
//
// Server is the skysocks app (port 3): it answers SOCKS5 (package socks5)
// on every route that reaches it and connects to the requested host from
// its visor's machine. Client is skysocks-client (port 13): it serves SOCKS5
// on a local address and carries each local connection over a route of its
// own to a Server, so one slow or stalled connection never holds up another
// (each route has its own flow-control window).
//
//	curl ──SOCKS5──▶ Client ══ route to pk:3 ══▶ Server ──TCP──▶ host:port
//
// The Client answers the local greeting itself, then sends greeting,
// passcode and CONNECT to the Server in one write: a proxied connection
// costs the route setup plus one round trip.
package skysocks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/apps/socks5"
)

// Ports.
const (
	ServerPort = 3
	ClientPort = 13
)

const (
	handshakeTimeout = 30 * time.Second
	dialTimeout      = 15 * time.Second
	// DefaultMaxConns bounds the connections a Server or Client carries at
	// once; more are refused with a SOCKS general failure.
	DefaultMaxConns = 1024
)

// ErrLocalTarget: the target is this machine or a private network, and the
// server was not started with AllowLocal.
var ErrLocalTarget = errors.New("the target is on the proxy's machine or a private network (start skysocks with --allow-local to permit)")

// ServerConfig configures a Server.
type ServerConfig struct {
	// Passcode, if not empty, is required of clients (SOCKS5 user/password
	// authentication; either field may carry it). Zero: no passcode.
	Passcode string
	// AllowLocal lets clients reach loopback, private (RFC 1918, ULA),
	// link-local and CGNAT addresses and this machine's own addresses.
	// Zero: refused, so a proxy does not open its owner's LAN to the network.
	AllowLocal bool
	// MaxConns bounds simultaneous connections (zero: DefaultMaxConns).
	MaxConns int
	Log      *zap.Logger
}

// Server is the skysocks SOCKS5 server.
type Server struct {
	cfg    ServerConfig
	log    *zap.Logger
	dialer net.Dialer
	slots  chan struct{}
}

// NewServer makes a server.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	s := &Server{cfg: cfg, log: cfg.Log, slots: make(chan struct{}, cfg.MaxConns)}
	s.dialer = net.Dialer{Timeout: dialTimeout}
	if !cfg.AllowLocal {
		s.dialer.ControlContext = refuseLocal
	}
	return s
}

// Serve answers the connections l accepts until ctx ends or l fails, then
// waits for them.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	return serve(ctx, l, s.slots, s.log, s.serveConn)
}

// serve runs handle on each connection l accepts, at most cap(slots) at
// once (more are refused), until ctx ends or l fails; then it waits for them.
func serve(ctx context.Context, l net.Listener, slots chan struct{}, log *zap.Logger, handle func(context.Context, net.Conn)) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accepting on %s: %w", l.Addr(), err)
		}
		select {
		case slots <- struct{}{}:
		default:
			log.Warn("too many connections: refusing one", zap.Stringer("remote", c.RemoteAddr()))
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			handle(ctx, c)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	log := s.log.With(zap.Stringer("remote", c.RemoteAddr()))
	// A timer, not a deadline: on a gateway connection a deadline is a call
	// each to set and to clear.
	timer := time.AfterFunc(handshakeTimeout, func() { c.Close() })
	defer timer.Stop()
	br := bufio.NewReaderSize(c, 1024)
	req, err := socks5.ServerHandshake(br, c, s.cfg.Passcode)
	if err != nil {
		if errors.Is(err, socks5.ErrAuth) {
			log.Warn("client refused: wrong passcode")
		} else {
			log.Debug("handshake failed", zap.Error(err))
		}
		return
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	target, err := s.dialer.DialContext(dctx, "tcp", req.Addr())
	cancel()
	if err != nil {
		log.Info("connect failed", zap.String("target", req.Addr()), zap.Error(err))
		code := socks5.ReplyCode(err)
		if errors.Is(err, ErrLocalTarget) {
			code = socks5.NotAllowed
		}
		socks5.WriteReply(c, code, socks5.Request{})
		return
	}
	defer target.Close()
	if err := socks5.WriteReply(c, socks5.Succeeded, socks5.BoundAddr(target.LocalAddr())); err != nil {
		return
	}
	if !timer.Stop() {
		return // the handshake ran out of time: c is closed
	}
	log.Debug("connected", zap.String("target", req.Addr()))
	pass(target, nil, c, br)
}

// refuseLocal is the dialer's check of each address it is about to
// connect to (after name resolution, so a name cannot smuggle one in).
func refuseLocal(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	if isLocal(ap.Addr().Unmap()) {
		return ErrLocalTarget
	}
	return nil
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func isLocal(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() ||
		ip.IsMulticast() || cgnat.Contains(ip) {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: refuse
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Unmap() == ip {
			return true
		}
	}
	return false
}
