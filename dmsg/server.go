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
	// MaxPendingHandshakes bounds sessions being set up at once (default 128).
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

	mu       sync.Mutex // guards sessions
	sessions map[cipher.PubKey]*session

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

	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	pending := make(chan struct{}, s.cfg.MaxPendingHandshakes)
	var err error
	for {
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			break
		}
		select {
		case pending <- struct{}{}:
		default:
			c.Close() // a handshake flood: honest clients retry
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handshake(ctx, c, pending)
		}()
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
	if ctx.Err() != nil && errors.Is(err, net.ErrClosed) {
		return nil
	}
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

// gatedConn holds reads until gate closes.
type gatedConn struct {
	net.Conn
	gate chan struct{}
}

func (g gatedConn) Read(p []byte) (int, error) {
	<-g.gate
	return g.Conn.Read(p)
}

// handshake turns an accepted connection into a session and serves it.
func (s *Server) handshake(ctx context.Context, c net.Conn, pending chan struct{}) {
	hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	nc, err := noise.Run(hctx, c, noise.Config{Pattern: noise.XK, LocalSK: s.cfg.SK, Purpose: sessionPurpose})
	cancel()
	<-pending
	if err != nil {
		s.log.Debug("session handshake failed", zap.String("remote", c.RemoteAddr().String()), zap.NamedError("err", err))
		c.Close()
		return
	}
	// The session reads nothing until it is registered: the client's
	// first ping is answered only once peers can reach it here.
	gate := make(chan struct{})
	ymx, err := yamux.Server(gatedConn{nc, gate}, yamuxConfig(s.log))
	if err != nil {
		nc.Close()
		return
	}
	ss := &session{remote: nc.RemotePK(), ymx: ymx, maxStreams: s.cfg.MaxStreamsPerSession}
	s.mu.Lock()
	if len(s.sessions) >= s.cfg.MaxSessions {
		s.mu.Unlock()
		ymx.Close()
		close(gate) // its reader sees the closed connection and ends
		return
	}
	if old := s.sessions[ss.remote]; old != nil {
		old.ymx.Close() // the client reconnected: its old session is dead to it
	}
	s.sessions[ss.remote] = ss
	s.mu.Unlock()
	close(gate)
	s.notifyChanged()
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
