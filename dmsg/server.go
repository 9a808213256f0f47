package dmsg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/acceptor"
	"github.com/skyfleet/skywire/internal/replay"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
)

// ServerConfig configures a dmsg server.
type ServerConfig struct {
	// SK is the server's key; clients find it in the discovery.
	SK cipher.SecKey
	// Discovery is the dmsg discovery's URL. Required.
	Discovery string
	// PublicAddr is the "host:port" clients dial; "" means the listener's
	// address (which must then not be a wildcard).
	PublicAddr string
	// MaxSessions bounds the client sessions (default 2048).
	MaxSessions int
	// MaxSessionsPerAddr bounds the sessions from one source address (an
	// IPv6 address counts by its /64; default 32): one host cannot take
	// every session.
	MaxSessionsPerAddr int
	// MaxPendingHandshakes bounds sessions being set up at once (default
	// 128), at most 8 of them from one source address.
	MaxPendingHandshakes int
	// MaxStreamsPerSession bounds the streams relayed for one session
	// (default MaxStreamsPerSession).
	MaxStreamsPerSession int
	Log                  *zap.Logger
}

// Server relays streams between its clients.
type Server struct {
	cfg    ServerConfig
	pk     cipher.PubKey
	log    *zap.Logger
	disc   *dmsgdisc.Client
	replay *replay.Cache[[49]byte] // (src pk, nonce) of requests within their window

	mu       sync.Mutex // guards sessions, perAddr
	sessions map[cipher.PubKey]*session
	perAddr  map[string]int // sessions per source address

	changed chan struct{} // the session count changed: republish
	wg      sync.WaitGroup
}

// NewServer returns a server; Serve runs it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.SK.IsZero() {
		return nil, errors.New("dmsg server: no key")
	}
	if cfg.Discovery == "" {
		return nil, errors.New("dmsg server: no discovery URL")
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 2048
	}
	if cfg.MaxSessionsPerAddr <= 0 {
		cfg.MaxSessionsPerAddr = 32
	}
	if cfg.MaxPendingHandshakes <= 0 {
		cfg.MaxPendingHandshakes = 128
	}
	if cfg.MaxStreamsPerSession <= 0 {
		cfg.MaxStreamsPerSession = MaxStreamsPerSession
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Server{
		cfg:      cfg,
		pk:       cfg.SK.PubKey(),
		log:      cfg.Log,
		disc:     dmsgdisc.NewClient(cfg.Discovery, cfg.SK),
		replay:   replay.New[[49]byte](1<<20, 2*MaxClockSkew),
		sessions: map[cipher.PubKey]*session{},
		perAddr:  map[string]int{},
		changed:  make(chan struct{}, 1),
	}, nil
}

// PK is the server's public key.
func (s *Server) PK() cipher.PubKey { return s.pk }

// Sessions is the number of client sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Serve accepts sessions on ln and keeps the server's discovery entry
// fresh, until ctx ends. It closes ln and every session before returning.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	addr := s.cfg.PublicAddr
	if addr == "" {
		addr = ln.Addr().String()
		if host, _, _ := net.SplitHostPort(addr); net.ParseIP(host).IsUnspecified() {
			ln.Close()
			return fmt.Errorf("dmsg server listens on %s: give the address clients should dial (public address)", addr)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.publishLoop(ctx, addr)
	}()
	s.log.Info("dmsg server running", zap.String("pk", s.pk.Hex()), zap.String("addr", addr))

	err := acceptor.Serve(ctx, ln, acceptor.Limits{PerSource: pendingPerAddr, Total: s.cfg.MaxPendingHandshakes}, func(ctx context.Context, c net.Conn, done func()) {
		s.handshake(ctx, c, done)
	})
	if err != nil {
		s.log.Error("dmsg server: accepting failed", zap.NamedError("err", err))
		err = fmt.Errorf("dmsg server: accepting on %s: %w", ln.Addr(), err)
	}
	cancel()
	s.mu.Lock()
	for _, ss := range s.sessions {
		ss.ymx.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	dctx, dcancel := context.WithTimeout(context.Background(), 2*time.Second)
	s.disc.Delete(dctx)
	dcancel()
	s.disc.Close()
	return err
}

func (s *Server) publishLoop(ctx context.Context, addr string) {
	backoff := time.Second
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.changed:
		}
		avail := s.cfg.MaxSessions - s.Sessions()
		err := s.disc.Publish(ctx, func(e *dmsgdisc.Entry) {
			e.Server = &dmsgdisc.ServerInfo{Address: addr, AvailableSessions: max(avail, 0)}
		})
		next := dmsgdisc.RefreshInterval
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("publishing to the dmsg discovery", zap.NamedError("err", err))
			next, backoff = backoff, min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
		}
		t.Reset(next)
	}
}

func (s *Server) notifyChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// gatedConn holds reads and writes until gate closes.
type gatedConn struct {
	net.Conn
	gate chan struct{}
}

func (g gatedConn) Read(p []byte) (int, error) {
	<-g.gate
	return g.Conn.Read(p)
}

func (g gatedConn) Write(p []byte) (int, error) {
	<-g.gate
	return g.Conn.Write(p)
}

// pendingPerAddr bounds the handshakes in progress from one source
// address; a server gives a handshake serverHandshakeTimeout.
const (
	pendingPerAddr         = 8
	serverHandshakeTimeout = 5 * time.Second
)

// handshake turns an accepted connection into a session and serves it;
// done frees its handshake slot.
func (s *Server) handshake(ctx context.Context, c net.Conn, done func()) {
	hctx, cancel := context.WithTimeout(ctx, serverHandshakeTimeout)
	nc, err := noise.Run(hctx, c, noise.Config{Pattern: noise.XK, LocalSK: s.cfg.SK, Purpose: sessionPurpose})
	cancel()
	done()
	if err != nil {
		s.log.Debug("session handshake failed", zap.String("remote", c.RemoteAddr().String()), zap.NamedError("err", err))
		c.Close()
		return
	}
	src := acceptor.Source(c.RemoteAddr())
	ss := &session{remote: nc.RemotePK(), maxStreams: s.cfg.MaxStreamsPerSession}
	s.mu.Lock()
	var refusal string
	old := s.sessions[ss.remote]
	switch {
	case old == nil && len(s.sessions) >= s.cfg.MaxSessions:
		refusal = fmt.Sprintf("busy: the server holds its %d sessions", s.cfg.MaxSessions)
	case s.perAddr[src] >= s.cfg.MaxSessionsPerAddr && (old == nil || old.source != src):
		refusal = fmt.Sprintf("busy: %d sessions from your address %s already (the server's cap per address)", s.cfg.MaxSessionsPerAddr, src)
	}
	if refusal != "" {
		s.mu.Unlock()
		s.log.Debug("session refused", zap.String("pk", ss.remote.Hex()), zap.String("remote", c.RemoteAddr().String()), zap.String("why", refusal))
		nc.SetWriteDeadline(time.Now().Add(serverHandshakeTimeout))
		noise.WriteMsg(nc, encodeSessionAnswer(StatusBusy, refusal))
		nc.Close()
		return
	}
	// The session is registered before it is answered: once the client
	// reads "accepted", peers can reach it here. Its yamux neither reads
	// nor writes until the answer is out (a peer may open a stream to it
	// at once).
	gate := make(chan struct{})
	ymx, err := yamux.Server(gatedConn{nc, gate}, yamuxConfig(s.log))
	if err != nil {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if old != nil {
		old.ymx.Close() // the client reconnected: its old session is dead to it
	}
	ss.ymx, ss.source = ymx, src
	s.sessions[ss.remote] = ss
	s.perAddr[src]++
	s.mu.Unlock()
	nc.SetWriteDeadline(time.Now().Add(serverHandshakeTimeout))
	err = noise.WriteMsg(nc, encodeSessionAnswer(StatusOK, ""))
	nc.SetWriteDeadline(time.Time{})
	close(gate)
	if err != nil {
		ymx.Close()
	}
	s.notifyChanged()
	stop := context.AfterFunc(ctx, func() { ymx.Close() })
	defer stop()
	log := s.log.With(zap.String("pk", ss.remote.Hex()))
	log.Debug("session up", zap.String("remote", c.RemoteAddr().String()))

	var wg sync.WaitGroup
	for {
		ys, err := ymx.AcceptStream()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.relay(ss, ys, log)
		}()
	}
	ymx.Close()
	wg.Wait()
	s.mu.Lock()
	if s.sessions[ss.remote] == ss {
		delete(s.sessions, ss.remote)
	}
	if s.perAddr[src]--; s.perAddr[src] <= 0 {
		delete(s.perAddr, src)
	}
	s.mu.Unlock()
	s.notifyChanged()
	log.Debug("session down")
}

// relay handles one stream request from src.
func (s *Server) relay(src *session, ys *yamux.Stream, log *zap.Logger) {
	ys.SetDeadline(time.Now().Add(HandshakeTimeout))
	refuse := func(st Status, why string, err error) {
		log.Debug("stream refused", zap.String("why", why), zap.NamedError("err", err))
		noise.WriteMsg(ys, encodeResponse(st, originServer, nil))
		ys.Close()
	}
	raw, err := noise.ReadMsg(ys, maxRequest)
	if err != nil {
		ys.Close()
		return
	}
	req, err := parseRequest(raw)
	switch {
	case err != nil:
		refuse(StatusRefused, "malformed", err)
		return
	case req.Src.PK != src.remote:
		refuse(StatusRefused, "src is not the session's key", nil)
		return
	case !fresh(req.Time):
		refuse(StatusRefused, "stale", nil)
		return
	}
	var rk [49]byte
	copy(rk[:], req.Src.PK[:])
	copy(rk[33:], req.Nonce[:])
	if err := s.replay.Add(rk, time.Now()); err != nil {
		refuse(StatusRefused, "replayed", err)
		return
	}
	s.mu.Lock()
	dst := s.sessions[req.Dst.PK]
	s.mu.Unlock()
	if dst == nil {
		refuse(StatusNoSession, "no session for dst", nil)
		return
	}
	if !src.acquire() {
		refuse(StatusBusy, "src at its stream limit", nil)
		return
	}
	defer src.release()
	if !dst.acquire() {
		refuse(StatusBusy, "dst at its stream limit", nil)
		return
	}
	defer dst.release()
	ds, err := dst.ymx.OpenStream()
	if err != nil {
		refuse(StatusFailed, "opening a stream to dst", err)
		return
	}
	ds.SetDeadline(time.Now().Add(HandshakeTimeout))
	var resp []byte
	if err = noise.WriteMsg(ds, raw); err == nil {
		resp, err = noise.ReadMsg(ds, maxResponse)
	}
	if err != nil {
		ds.Close()
		refuse(StatusFailed, "dst did not answer", err)
		return
	}
	if err := noise.WriteMsg(ys, resp); err != nil {
		ds.Close()
		ys.Close()
		return
	}
	if st, _, _, err := parseResponse(resp); err != nil || st != StatusOK {
		ds.Close()
		ys.Close()
		return
	}
	ys.SetDeadline(time.Time{})
	ds.SetDeadline(time.Time{})
	splice(ys, ds)
}

func fresh(t time.Time) bool {
	d := time.Since(t)
	return d <= MaxClockSkew && d >= -MaxClockSkew
}
