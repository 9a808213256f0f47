package dmsg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/backlog"
	"github.com/skyfleet/skywire/internal/ports"
	"github.com/skyfleet/skywire/internal/replay"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
)

// ClientConfig configures a dmsg client.
type ClientConfig struct {
	SK cipher.SecKey
	// Discovery is the dmsg discovery's URL. Required.
	Discovery string
	// SessionsCount is how many servers to keep sessions with (default 1).
	SessionsCount int
	// TrustedServers, if not empty, are the only dmsg servers used (to keep
	// sessions with, and to reach other clients through), whatever the
	// discovery lists.
	TrustedServers []cipher.PubKey
	Log            *zap.Logger
}

// trusts reports whether the client may use the server srv.
func (c *Client) trusts(srv cipher.PubKey) bool {
	return len(c.cfg.TrustedServers) == 0 || slices.Contains(c.cfg.TrustedServers, srv)
}

// Client keeps sessions with dmsg servers, publishes which ones it can be
// reached through, dials other clients and accepts their streams.
type Client struct {
	cfg    ClientConfig
	pk     cipher.PubKey
	log    *zap.Logger
	disc   *dmsgdisc.Client
	replay *replay.Cache[[49]byte]

	mu        sync.Mutex                       // guards sessions, listeners, ports, closed, runCtx
	sessions  map[cipher.PubKey]*clientSession // by server key
	dialing   map[cipher.PubKey]*sessionDial   // sessions being set up, by server key
	listeners map[uint16]*Listener
	ports     *ports.Table // in use by listeners and dialled streams
	closed    bool
	runCtx    context.Context // Run's; sessions dialled by Dial live under it

	ready     chan struct{} // closed once a session is up and published
	readyOnce sync.Once
	changed   chan struct{} // the session set changed: republish
	wg        sync.WaitGroup
}

type clientSession struct {
	session
	addr string
}

// NewClient returns a client; Run runs it.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.SK.IsZero() {
		return nil, errors.New("dmsg client: no key")
	}
	if cfg.Discovery == "" {
		return nil, errors.New("dmsg client: no discovery URL")
	}
	if cfg.SessionsCount <= 0 {
		cfg.SessionsCount = 1
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Client{
		cfg:       cfg,
		pk:        cfg.SK.PubKey(),
		log:       cfg.Log,
		disc:      dmsgdisc.NewClient(cfg.Discovery, cfg.SK),
		replay:    replay.New[[49]byte](1<<16, 2*MaxClockSkew),
		sessions:  map[cipher.PubKey]*clientSession{},
		dialing:   map[cipher.PubKey]*sessionDial{},
		listeners: map[uint16]*Listener{},
		ports:     ports.New(FirstEphemeralPort),
		ready:     make(chan struct{}),
		changed:   make(chan struct{}, 1),
	}, nil
}

// PK is the client's key.
func (c *Client) PK() cipher.PubKey { return c.pk }

// Ready is closed once the client has a session and is published.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// ServerAddrs lists the network addresses ("host:port") of the servers
// the client has sessions with.
func (c *Client) ServerAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.sessions))
	for _, s := range c.sessions {
		out = append(out, s.addr)
	}
	sort.Strings(out)
	return out
}

// Servers lists the servers the client has sessions with.
func (c *Client) Servers() []cipher.PubKey {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]cipher.PubKey, 0, len(c.sessions))
	for pk := range c.sessions {
		out = append(out, pk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// Run keeps SessionsCount sessions (reconnecting with backoff when servers
// go away) and the client's discovery entry fresh, until ctx ends. Then it
// closes every listener, stream and session and withdraws the entry.
func (c *Client) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c.mu.Lock()
	c.runCtx = ctx
	c.mu.Unlock()
	defer c.shutdown()

	backoff := time.Second
	var published []cipher.PubKey
	nextPublish := time.Time{}
	for {
		if n := len(c.Servers()); n < c.cfg.SessionsCount {
			if err := c.connectMore(ctx, c.cfg.SessionsCount-n); err != nil && ctx.Err() == nil {
				c.log.Warn("connecting to dmsg servers", zap.NamedError("err", err), zap.Duration("retry_in", backoff))
			}
		}
		servers := c.Servers()
		wait := backoff
		if len(servers) >= c.cfg.SessionsCount {
			backoff, wait = time.Second, dmsgdisc.RefreshInterval
		} else {
			backoff = min(2*backoff, 30*time.Second)
		}
		if len(servers) > 0 && (!sameKeys(servers, published) || time.Now().After(nextPublish)) {
			err := c.disc.Publish(ctx, func(e *dmsgdisc.Entry) {
				e.Client = &dmsgdisc.ClientInfo{DelegatedServers: servers}
			})
			if err == nil {
				published, nextPublish = servers, time.Now().Add(dmsgdisc.RefreshInterval)
				c.readyOnce.Do(func() { close(c.ready) })
			} else if ctx.Err() == nil {
				c.log.Warn("publishing to the dmsg discovery", zap.NamedError("err", err))
				wait = min(wait, 5*time.Second)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-c.changed:
		case <-t.C:
		}
		t.Stop()
	}
}

func sameKeys(a, b []cipher.PubKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (c *Client) shutdown() {
	c.mu.Lock()
	c.closed = true
	ls := make([]*Listener, 0, len(c.listeners))
	for _, l := range c.listeners {
		ls = append(ls, l)
	}
	for _, s := range c.sessions {
		s.ymx.Close()
	}
	c.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	c.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	c.disc.Delete(ctx)
	cancel()
	c.disc.Close()
}

func (c *Client) notifyChanged() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// connectMore dials up to n servers we have no session with.
func (c *Client) connectMore(ctx context.Context, n int) error {
	servers, err := c.disc.Servers(ctx)
	if err != nil {
		return fmt.Errorf("listing dmsg servers: %w", err)
	}
	rand.Shuffle(len(servers), func(i, j int) { servers[i], servers[j] = servers[j], servers[i] })
	var errs []error
	for _, e := range servers {
		if n == 0 {
			break
		}
		if e.Server.AvailableSessions == 0 || c.session(e.PK) != nil || !c.trusts(e.PK) {
			continue
		}
		if _, err := c.dialSession(ctx, e.PK, e.Server.Address); err != nil {
			errs = append(errs, err)
			continue
		}
		n--
	}
	if n > 0 && len(errs) == 0 {
		if len(c.cfg.TrustedServers) > 0 {
			return fmt.Errorf("%d more dmsg servers wanted, the discovery lists %d, of which dmsg.trusted_servers allows only those listed", n, len(servers))
		}
		return fmt.Errorf("%d more dmsg servers wanted, the discovery lists %d", n, len(servers))
	}
	return errors.Join(errs...)
}

func (c *Client) session(srv cipher.PubKey) *clientSession {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[srv]
}

// sessionDial is a session being set up; callers that want the same server
// meanwhile wait for it.
type sessionDial struct {
	done chan struct{}
	s    *clientSession
	err  error
}

// dialSession returns the session with the server srv, opening one at addr
// (and serving it until it ends) if there is none. Concurrent callers for
// one server share one dial: a server keeps one session per client and
// would close the first of two opened at once, while the client kept it.
func (c *Client) dialSession(ctx context.Context, srv cipher.PubKey, addr string) (*clientSession, error) {
	c.mu.Lock()
	if s := c.sessions[srv]; s != nil {
		c.mu.Unlock()
		return s, nil
	}
	if d := c.dialing[srv]; d != nil {
		c.mu.Unlock()
		select {
		case <-d.done:
			return d.s, d.err
		case <-ctx.Done():
			return nil, fmt.Errorf("dmsg server %s at %s: %w", srv.Short(), addr, ctx.Err())
		}
	}
	runCtx, closed := c.runCtx, c.closed
	if runCtx == nil || closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	d := &sessionDial{done: make(chan struct{})}
	c.dialing[srv] = d
	c.mu.Unlock()
	d.s, d.err = c.openSession(ctx, runCtx, srv, addr)
	c.mu.Lock()
	delete(c.dialing, srv)
	c.mu.Unlock()
	close(d.done)
	return d.s, d.err
}

// openSession dials the server srv at addr, registers the session and serves
// it until runCtx ends or the session does.
func (c *Client) openSession(ctx, runCtx context.Context, srv cipher.PubKey, addr string) (*clientSession, error) {
	hctx, cancel := context.WithTimeout(ctx, HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(hctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dmsg server %s at %s: %w", srv.Short(), addr, err)
	}
	nc, err := noise.Run(hctx, conn, noise.Config{Pattern: noise.XK, Initiator: true, LocalSK: c.cfg.SK, RemotePK: srv, Purpose: sessionPurpose})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dmsg server %s at %s: %w", srv.Short(), addr, err)
	}
	// The server answers once it has registered the session (from then on
	// peers can reach us through it), or says why it will not.
	if dl, ok := hctx.Deadline(); ok {
		nc.SetReadDeadline(dl)
	}
	ans, err := noise.ReadMsg(nc, 1+maxReason)
	var st Status
	var reason string
	if err == nil {
		st, reason, err = parseSessionAnswer(ans)
	}
	nc.SetReadDeadline(time.Time{})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("dmsg server %s at %s: session not answered: %w", srv.Short(), addr, err)
	}
	if st != StatusOK {
		nc.Close()
		return nil, fmt.Errorf("dmsg server %s at %s refused the session: %s", srv.Short(), addr, reason)
	}
	ymx, err := yamux.Client(nc, yamuxConfig(c.log))
	if err != nil {
		nc.Close()
		return nil, err
	}
	s := &clientSession{session: session{remote: srv, ymx: ymx}, addr: addr}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ymx.Close()
		return nil, ErrClosed
	}
	if old := c.sessions[srv]; old != nil {
		c.mu.Unlock()
		ymx.Close() // raced with another dial to the same server
		return old, nil
	}
	c.sessions[srv] = s
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		c.serveSession(runCtx, s)
	}()
	c.notifyChanged()
	c.log.Info("dmsg session up", zap.String("server", srv.Hex()), zap.String("remote", addr))
	return s, nil
}

// serveSession accepts the streams the server opens to us.
func (c *Client) serveSession(ctx context.Context, s *clientSession) {
	stop := context.AfterFunc(ctx, func() { s.ymx.Close() })
	defer stop()
	var wg sync.WaitGroup
	for {
		ys, err := s.ymx.AcceptStream()
		if err != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.accept(ys)
		}()
	}
	s.ymx.Close()
	wg.Wait()
	c.mu.Lock()
	if c.sessions[s.remote] == s {
		delete(c.sessions, s.remote)
	}
	c.mu.Unlock()
	c.notifyChanged()
	if ctx.Err() == nil {
		c.log.Warn("dmsg session lost", zap.String("server", s.remote.Hex()))
	}
}

// accept answers one incoming stream request.
func (c *Client) accept(ys *yamux.Stream) {
	ys.SetDeadline(time.Now().Add(HandshakeTimeout))
	refuse := func(st Status) {
		noise.WriteMsg(ys, encodeResponse(st, originDestination, nil))
		ys.Close()
	}
	raw, err := noise.ReadMsg(ys, maxRequest)
	if err != nil {
		ys.Close()
		return
	}
	req, err := parseRequest(raw)
	if err != nil || req.Dst.PK != c.pk || !fresh(req.Time) {
		refuse(StatusRefused)
		return
	}
	var rk [49]byte
	copy(rk[:], req.Src.PK[:])
	copy(rk[33:], req.Nonce[:])
	if c.replay.Add(rk, time.Now()) != nil {
		refuse(StatusRefused)
		return
	}
	c.mu.Lock()
	l := c.listeners[req.Dst.Port]
	c.mu.Unlock()
	if l == nil {
		refuse(StatusNoListener)
		return
	}
	if !l.queue.Reserve() {
		refuse(StatusBusy)
		return
	}
	h, err := noise.NewHandshake(noise.Config{Pattern: noise.KK, LocalSK: c.cfg.SK, RemotePK: req.Src.PK, Purpose: streamPurpose})
	var msg2 []byte
	if err == nil {
		if _, err = h.ReadMessage(req.Noise); err == nil {
			msg2, err = h.WriteMessage(nil)
		}
	}
	var nc *noise.Conn
	if err == nil {
		nc, err = h.Conn(wrapStream(ys))
	}
	if err != nil {
		l.queue.Unreserve()
		refuse(StatusRefused)
		return
	}
	if err := noise.WriteMsg(ys, encodeResponse(StatusOK, originDestination, msg2)); err != nil {
		l.queue.Unreserve()
		ys.Close()
		return
	}
	ys.SetDeadline(time.Time{})
	l.queue.Deliver(&Stream{Conn: nc, local: req.Dst, remote: req.Src})
}

// Listen accepts streams to port.
func (c *Client) Listen(port uint16) (*Listener, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if !c.ports.Take(port) {
		return nil, fmt.Errorf("dmsg port %d is in use", port)
	}
	l := &Listener{c: c, addr: Addr{PK: c.pk, Port: port}, queue: backlog.New[*Stream](AcceptBacklog)}
	c.listeners[port] = l
	return l, nil
}

func (c *Client) removeListener(l *Listener) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.listeners[l.addr.Port] == l {
		delete(c.listeners, l.addr.Port)
		c.ports.Free(l.addr.Port)
	}
}

func (c *Client) allocPort() (uint16, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, err := c.ports.Ephemeral()
	if err != nil {
		return 0, fmt.Errorf("dmsg: %w", err)
	}
	return p, nil
}

func (c *Client) freePort(p uint16) {
	c.mu.Lock()
	c.ports.Free(p)
	c.mu.Unlock()
}

// Dial opens an end-to-end encrypted stream to dst:port, through a server
// dst is reachable through (one we have a session with first).
func (c *Client) Dial(ctx context.Context, dst cipher.PubKey, port uint16) (*Stream, error) {
	fail := func(err error) (*Stream, error) {
		return nil, fmt.Errorf("dmsg dial %s:%d: %w", dst.Short(), port, err)
	}
	if dst == c.pk {
		return fail(errors.New("that is this visor's own key"))
	}
	entry, err := c.disc.Entry(ctx, dst)
	if err != nil {
		return fail(err)
	}
	if entry.Client == nil || len(entry.Client.DelegatedServers) == 0 {
		return fail(fmt.Errorf("%w: %s is not connected to any dmsg server", ErrNoRoute, dst.Short()))
	}
	candidates := append([]cipher.PubKey(nil), entry.Client.DelegatedServers...)
	sort.SliceStable(candidates, func(i, j int) bool { return c.session(candidates[i]) != nil && c.session(candidates[j]) == nil })
	var errs []error
	for _, srv := range candidates {
		if !c.trusts(srv) {
			errs = append(errs, fmt.Errorf("server %s: not in dmsg.trusted_servers", srv.Short()))
			continue
		}
		s := c.session(srv)
		if s == nil {
			se, err := c.disc.Entry(ctx, srv)
			if err != nil || se.Server == nil {
				errs = append(errs, fmt.Errorf("server %s: no discovery entry", srv.Short()))
				continue
			}
			if s, err = c.dialSession(ctx, srv, se.Server.Address); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		st, err := c.open(ctx, s, dst, port)
		if err == nil {
			return st, nil
		}
		errs = append(errs, fmt.Errorf("via server %s: %w", srv.Short(), err))
		var se *StatusError
		if errors.As(err, &se) && se.By == "destination" || ctx.Err() != nil {
			break // the destination answered: another server would not change it
		}
	}
	return fail(errors.Join(errs...))
}

// open sets up one stream over session s.
func (c *Client) open(ctx context.Context, s *clientSession, dst cipher.PubKey, port uint16) (*Stream, error) {
	lport, err := c.allocPort()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			c.freePort(lport)
		}
	}()
	h, err := noise.NewHandshake(noise.Config{Pattern: noise.KK, Initiator: true, LocalSK: c.cfg.SK, RemotePK: dst, Purpose: streamPurpose})
	if err != nil {
		return nil, err
	}
	msg1, err := h.WriteMessage(nil)
	if err != nil {
		return nil, err
	}
	req := &request{Src: Addr{c.pk, lport}, Dst: Addr{dst, port}, Time: time.Now(), Nonce: newNonce(), Noise: msg1}
	raw, err := encodeRequest(req, c.cfg.SK)
	if err != nil {
		return nil, err
	}
	ys, err := s.ymx.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("opening a stream: %w", err)
	}
	deadline := time.Now().Add(HandshakeTimeout)
	if d, has := ctx.Deadline(); has && d.Before(deadline) {
		deadline = d
	}
	ys.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { ys.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var resp []byte
	if err = noise.WriteMsg(ys, raw); err == nil {
		resp, err = noise.ReadMsg(ys, maxResponse)
	}
	if err != nil {
		ys.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no answer: %w", err)
	}
	st, origin, msg2, err := parseResponse(resp)
	if err != nil {
		ys.Close()
		return nil, err
	}
	if st != StatusOK {
		ys.Close()
		by := "server"
		if origin == originDestination {
			by = "destination"
		}
		return nil, &StatusError{Status: st, By: by}
	}
	if _, err := h.ReadMessage(msg2); err != nil {
		ys.Close()
		return nil, err
	}
	nc, err := h.Conn(wrapStream(ys))
	if err != nil {
		ys.Close()
		return nil, err
	}
	ys.SetDeadline(time.Time{})
	ok = true
	return &Stream{Conn: nc, local: req.Src, remote: req.Dst, release: func() { c.freePort(lport) }}, nil
}
