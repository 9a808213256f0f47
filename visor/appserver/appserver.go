// Package appserver runs a visor's apps and serves them: it launches each
// configured app as a child process (built-ins as the skywire executable
// itself, others from apps_path) with its key in the environment, keeps its
// logs, stops it with the visor, and answers its calls (internal/appproto):
// Dial and Listen over the visor's router, each connection's bytes over a
// data socket.
package appserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/acceptor"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/internal/changes"
	"github.com/skyfleet/skywire/internal/logring"
	"github.com/skyfleet/skywire/internal/packets"
	"github.com/skyfleet/skywire/router"
)

// AppConfig is one configured app.
type AppConfig struct {
	Name      string
	Port      uint16
	AutoStart bool
	Args      []string
}

// Config configures the server.
type Config struct {
	// Addr is the gateway's TCP address (app_server_addr).
	Addr   string
	Router *router.Router
	PK     cipher.PubKey
	// Executable runs built-in apps (the skywire executable).
	Executable string
	// AppsPath holds the binaries of other apps.
	AppsPath string
	// LocalPath is the visor's state directory (apps work in apps/<name>).
	LocalPath string
	Apps      []AppConfig
	// Bypass lists the IP addresses the visor itself talks to (nil: none),
	// for the gateway's Bypass.
	Bypass func() []netip.Addr
	// Advertise lists an app's port in the service discovery until stop
	// is called (nil: the gateway's Advertise fails).
	Advertise func(app string, port uint16, args appproto.AdvertiseArgs) (stop func(), err error)
	Log       *zap.Logger
}

// Server launches and serves apps.
type Server struct {
	cfg Config
	log *zap.Logger
	ln  net.Listener
	// join is the join socket (Linux: an abstract unix socket), where an
	// app hands over a local socket to be relayed to a route; nil if none.
	join net.Listener

	unauth unauthSet // control and data connections not yet authenticated

	updates changes.Signal // an app's state, status, error or config changed (Changed)

	mu     sync.Mutex // guards apps, byKey, closed
	apps   map[string]*app
	byKey  map[string]*session
	closed bool

	wg sync.WaitGroup
}

// New listens on cfg.Addr (so a busy address fails at once).
func New(cfg Config) (*Server, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("app_server_addr: listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{cfg: cfg, log: cfg.Log, ln: ln, apps: map[string]*app{}, byKey: map[string]*session{}}
	s.join = listenJoin()
	for _, a := range cfg.Apps {
		s.apps[a.Name] = &app{cfg: a, state: StateStopped, logs: logring.New(logLines)}
	}
	return s, nil
}

// Close releases the listener (Run does too; for a server never run).
func (s *Server) Close() error {
	if s.join != nil {
		s.join.Close()
	}
	return s.ln.Close()
}

// joinAddr is APP_JOIN_ADDR ("" without a join socket).
func (s *Server) joinAddr() string {
	if s.join == nil {
		return ""
	}
	return "unix:" + s.join.Addr().String()
}

// Addr is the gateway's address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run starts the auto-start apps and serves until ctx ends; then it stops
// every app (SIGTERM, then SIGKILL after a grace period) and waits.
func (s *Server) Run(ctx context.Context) error {
	for _, a := range s.cfg.Apps {
		if a.AutoStart {
			if err := s.Start(a.Name, nil); err != nil {
				s.log.Error("starting app", zap.String("app", a.Name), zap.NamedError("err", err))
			}
		}
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var conns sync.WaitGroup
	var joinErr error
	if s.join != nil {
		conns.Add(1)
		go func() {
			defer conns.Done()
			joinErr = acceptor.Serve(ctx, s.join, acceptor.Limits{Total: maxUnauth}, func(ctx context.Context, c net.Conn, done func()) { s.serveJoin(ctx, c, done) })
			if joinErr != nil {
				s.Close() // the gateway goes with it
			}
		}()
	}
	err := acceptor.Serve(ctx, s.ln, acceptor.Limits{}, func(ctx context.Context, c net.Conn, _ func()) { s.serveConn(ctx, c) })
	if err != nil {
		s.log.Error("app gateway: accepting failed: stopping every app", zap.NamedError("err", err))
		err = fmt.Errorf("app gateway on %s: %w", s.ln.Addr(), err)
	}
	s.mu.Lock()
	s.closed = true
	var running []*app
	for _, a := range s.apps {
		running = append(running, a)
	}
	s.mu.Unlock()
	var stops sync.WaitGroup
	for _, a := range running {
		stops.Add(1)
		go func() {
			defer stops.Done()
			s.stop(a)
		}()
	}
	stops.Wait()
	s.wg.Wait()
	conns.Wait()
	if err == nil && joinErr != nil {
		err = fmt.Errorf("app join socket: %w", joinErr)
	}
	return err
}

// Limits on what reaches the gateway before it knows which app is calling.
// A connection is unauthenticated until its first request names a running
// app's key; at most maxUnauth are held at once (a new one evicts the
// oldest, so a flood of idle connections cannot lock apps out), each gets
// firstRequestTimeout for its first request, and no request may pass
// appproto.MaxRequest bytes (the control connection is closed).
const (
	maxUnauth           = 128
	firstRequestTimeout = 10 * time.Second
)

// unauthSet holds the unauthenticated connections, oldest first.
type unauthSet struct {
	mu    sync.Mutex // guards conns
	conns []net.Conn
}

// add holds c, closing the oldest connection held if the set is full.
func (u *unauthSet) add(c net.Conn) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.conns) >= maxUnauth {
		u.conns[0].Close()
		u.conns = slices.Delete(u.conns, 0, 1)
	}
	u.conns = append(u.conns, c)
}

// remove lets c go (it authenticated or ended); false if it was evicted.
func (u *unauthSet) remove(c net.Conn) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := slices.Index(u.conns, c)
	if i < 0 {
		return false
	}
	u.conns = slices.Delete(u.conns, i, i+1)
	return true
}

// serveConn tells a data socket from a control connection.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	s.unauth.add(c)
	defer s.unauth.remove(c)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetReadDeadline(time.Now().Add(firstRequestTimeout))
	lr := &requestReader{r: c, left: appproto.MaxRequest}
	br := bufio.NewReaderSize(lr, 4096)
	head, err := br.Peek(len(appproto.DataPrefix) + 1)
	if err != nil {
		return
	}
	if strings.HasPrefix(string(head), "SWDATA") { // a data socket, or a malformed one answered ERR
		s.serveData(c, br)
		return
	}
	// Each control connection has its own RPC server holding the gateways
	// of the keys it has used: a stopped app's gateway goes with it.
	srv := rpc.NewServer()
	kc := &keyCodec{ServerCodec: jsonrpc.NewServerCodec(struct {
		io.Reader
		io.Writer
		io.Closer
	}{br, c, c}), s: s, srv: srv, known: map[string]bool{}, c: c, lr: lr}
	srv.ServeCodec(kc)
	s.detach(kc.known) // an attached app's run ends with its control connection
}

// requestReader bounds what one request may read: a request longer than
// appproto.MaxRequest fails before the decoder buffers it.
type requestReader struct {
	r    io.Reader
	left int // only the codec's reading goroutine uses it
}

var errRequestTooLong = fmt.Errorf("request over %d bytes", appproto.MaxRequest)

func (l *requestReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errRequestTooLong
	}
	n, err := l.r.Read(p[:min(len(p), l.left)])
	l.left -= n
	return n, err
}

// keyCodec registers a session's gateway with the connection's RPC server
// the first time a request names its key (an unknown key stays
// unregistered: the call is answered "rpc: can't find service"). The first
// request naming a running app's key authenticates the connection: its
// first-request deadline goes.
type keyCodec struct {
	rpc.ServerCodec
	s             *Server
	srv           *rpc.Server
	c             net.Conn
	lr            *requestReader
	known         map[string]bool // only the reading goroutine uses known, authed, lr
	authed, clear bool
}

func (k *keyCodec) ReadRequestHeader(r *rpc.Request) error {
	k.lr.left = appproto.MaxRequest
	if err := k.ServerCodec.ReadRequestHeader(r); err != nil {
		return err
	}
	key, _, ok := strings.Cut(r.ServiceMethod, ".")
	if !ok || k.known[key] {
		return nil
	}
	k.s.mu.Lock()
	sess := k.s.byKey[key]
	k.s.mu.Unlock()
	if sess != nil && k.srv.RegisterName(key, gateway{ss: sess}) == nil {
		k.known[key] = true
		if !k.authed {
			k.authed, k.clear = true, true
		}
	}
	return nil
}

func (k *keyCodec) ReadRequestBody(body any) error {
	err := k.ServerCodec.ReadRequestBody(body)
	if k.clear { // the first authenticated request is read whole
		k.clear = false
		if !k.s.unauth.remove(k.c) {
			return errors.New("evicted") // closed meanwhile
		}
		k.c.SetReadDeadline(time.Time{})
	}
	return err
}

// serveData attaches a data socket to its connection and copies both ways.
func (s *Server) serveData(c net.Conn, br *bufio.Reader) {
	raw, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(raw) > 256 {
		fmt.Fprintf(c, "ERR malformed data socket request: a line over 256 bytes\n")
		return
	}
	if err != nil {
		return // ended or timed out before its line did
	}
	f := strings.Fields(string(raw))
	if len(f) != 3 || f[0] != appproto.DataPrefix {
		fmt.Fprintf(c, "ERR malformed data socket request: want %q\n", appproto.DataPrefix+" <APP_KEY> <conn id>")
		return
	}
	sess, id, ac, err := s.lookupAttach(f[1], f[2])
	if err != nil {
		fmt.Fprintf(c, "ERR %v\n", err)
		return
	}
	if !s.unauth.remove(c) {
		sess.closeConn(id) // evicted meanwhile
		return
	}
	c.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(c, "OK\n"); err != nil {
		sess.closeConn(id)
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	// From here the socket is read directly (no request bound, and a route
	// can read a socket with readv), after what the line's reader holds.
	var fromApp io.Reader = c
	if n := br.Buffered(); n > 0 {
		held, _ := br.Peek(n)
		fromApp = io.MultiReader(bytes.NewReader(held), c)
	}
	splice(c, fromApp, ac.c)
	sess.closeConn(id)
}

// joined relays a socket an app handed over to its connection.
func (s *Server) joined(sess *session, id uint32, ac *appConn, c net.Conn) {
	splice(c, c, ac.c)
	c.Close()
	sess.closeConn(id)
}

// joinedPackets relays a packet device an app handed over (its TUN) to its
// connection, packets length-framed (internal/packets), until either
// fails, the app closes ctl or the app ends. Frames of other kinds pass
// between the route and ctl, the join's control channel, where the app
// also asks for the counters; the relay's last frame there says why it
// ended.
func (s *Server) joinedPackets(sess *session, id uint32, ac *appConn, dev *os.File, ctl net.Conn) {
	defer sess.closeConn(id)
	defer ctl.Close()
	defer dev.Close() // ends the device reader
	route := &packets.Writer{W: ac.c}
	app := &packets.Writer{W: ctl}
	var n packets.Counters
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctlDone := make(chan error, 1)
	go func() { // the app's frames: to the route, but for its questions
		for {
			kind, body, err := packets.ReadNewFrame(ctl)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("the app closed the join")
				}
				ctlDone <- err
				cancel()
				return
			}
			switch kind {
			case packets.KindStats:
				err = app.Write(packets.KindStats, n.Stats())
			case packets.KindEnd:
				err = errors.New("the app ended the join")
			default:
				err = route.Write(kind, body)
			}
			if err != nil {
				ctlDone <- err
				cancel()
				return
			}
		}
	}()
	// The route is read without a buffer: each frame's body is copied once,
	// from the received packets straight into the pump's buffer.
	err := packets.Pump(ctx, ac.c, ac.c, dev, func(kind byte, body []byte) error {
		if kind == packets.KindStats || kind == packets.KindEnd {
			return nil // the control channel's own: never from a route
		}
		return app.Write(kind, body)
	}, route, &n)
	select {
	case cerr := <-ctlDone:
		err = cerr
	default:
	}
	reason := ""
	if err != nil && !errors.Is(err, io.EOF) {
		reason = err.Error()
	}
	ctl.SetWriteDeadline(time.Now().Add(time.Second))
	app.Write(packets.KindStats, n.Stats())
	app.Write(packets.KindEnd, []byte(reason))
}

// lookupAttach finds a session by key and claims its connection id for a
// data socket or a join.
func (s *Server) lookupAttach(key string, idText string) (*session, uint32, *appConn, error) {
	id, err := strconv.ParseUint(idText, 10, 32)
	if err != nil {
		return nil, 0, nil, errors.New("malformed connection id")
	}
	s.mu.Lock()
	sess := s.byKey[key]
	s.mu.Unlock()
	if sess == nil {
		return nil, 0, nil, errors.New("unknown app key")
	}
	ac, err := sess.attach(uint32(id))
	return sess, uint32(id), ac, err
}

// splice copies app ↔ route until both directions end. Each side's end of
// stream is passed on as a half-close (the app's shutdown of writing
// becomes the route's CloseWrite, the far end's becomes the socket's); an
// error on either side ends both as a reset, never as an end of stream: a
// route cut without its authenticated close resets the app's socket (RST),
// and a failed socket resets the route, so no cut transfer looks complete.
func splice(c net.Conn, fromApp io.Reader, route *router.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := route.WriteTo(c); err != nil {
			reset(c) // unblocks the app → route copy
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	if _, err := route.ReadFrom(fromApp); err != nil {
		route.Abort() // unblocks the route → app copy
	} else {
		route.CloseWrite()
	}
	<-done
	route.Close()
}

// reset closes c so that its peer sees an error, not an end of stream: a
// TCP reset (on a unix socket there is no such thing: it is closed).
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func newKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// session is one run of an app: its key, connections and listeners. Its
// methods are the gateway's (net/rpc serves them under the key).
type session struct {
	s   *Server
	app *app
	key string

	mu        sync.Mutex        // guards conns, listeners, nextID, revoked, ads
	ads       map[string]func() // advertised types' stops
	conns     map[uint32]*appConn
	listeners map[uint32]*router.Listener
	nextID    uint32
	revoked   bool
}

type appConn struct {
	c        *router.Conn
	attached bool // guarded by session.mu: a data socket or a join has it
}

var errRevoked = errors.New("the app is no longer running")

func (ss *session) add(c *router.Conn) (uint32, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.revoked {
		c.Close()
		return 0, errRevoked
	}
	ss.nextID++
	ss.conns[ss.nextID] = &appConn{c: c}
	return ss.nextID, nil
}

// adopt adds a new connection and describes it in reply.
func (ss *session) adopt(c *router.Conn, reply *appproto.ConnReply) error {
	id, err := ss.add(c)
	if err != nil {
		return err
	}
	*reply = appproto.ConnReply{Conn: id, Local: c.LocalAddr().String(), Remote: c.RemoteAddr().String()}
	return nil
}

func (ss *session) conn(id uint32) (*appConn, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ac := ss.conns[id]
	if ac == nil {
		return nil, fmt.Errorf("no connection %d", id)
	}
	return ac, nil
}

func (ss *session) attach(id uint32) (*appConn, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ac := ss.conns[id]
	switch {
	case ac == nil:
		return nil, fmt.Errorf("no connection %d", id)
	case ac.attached:
		return nil, fmt.Errorf("connection %d already has a data socket", id)
	}
	ac.attached = true
	return ac, nil
}

func (ss *session) closeConn(id uint32) {
	ss.mu.Lock()
	ac := ss.conns[id]
	delete(ss.conns, id)
	ss.mu.Unlock()
	if ac != nil {
		ac.c.Close()
	}
}

// revoke ends the session: its key stops working, its connections and
// listeners close.
func (ss *session) revoke() {
	ss.mu.Lock()
	ss.revoked = true
	conns, ls, ads := ss.conns, ss.listeners, ss.ads
	ss.conns, ss.listeners, ss.ads = map[uint32]*appConn{}, map[uint32]*router.Listener{}, nil
	ss.mu.Unlock()
	for _, stop := range ads {
		stop()
	}
	for _, ac := range conns {
		ac.c.Close()
	}
	for _, l := range ls {
		l.Close()
	}
}
