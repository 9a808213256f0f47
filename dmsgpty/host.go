package dmsgpty

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
)

// Host defaults and bounds.
const (
	DefaultMaxSessionsPerKey = 4
	DefaultMaxSessions       = 32
	DefaultIdleTimeout       = time.Hour
	// openTimeout bounds how long a caller may take to send OPEN.
	openTimeout = 10 * time.Second
	// killGrace is how long a program has between SIGHUP and SIGKILL.
	killGrace = 2 * time.Second
	// drainGrace is how long output keeps being relayed after the program
	// exited while nothing more comes (a background child holding the
	// terminal open does not hold the session).
	drainGrace = 2 * time.Second
)

// ErrUnsupported is returned where the host cannot run (Windows).
var ErrUnsupported = errors.New("the remote shell host is not supported on this system (Linux, macOS and the BSDs have it)")

// Config configures a Host. The zero value of each field is described on it.
type Config struct {
	// Shell runs shell sessions. "" means the user's login shell ($SHELL,
	// else /etc/passwd's, else /bin/sh).
	Shell string
	// Dir is the sessions' working directory. "" means the home directory.
	Dir string
	// MaxSessionsPerKey bounds the sessions one caller holds at once;
	// 0 means DefaultMaxSessionsPerKey.
	MaxSessionsPerKey int
	// MaxSessions bounds all sessions; 0 means DefaultMaxSessions.
	MaxSessions int
	// IdleTimeout ends a session with no input and no output for that long;
	// 0 means DefaultIdleTimeout, a negative value never.
	IdleTimeout time.Duration
	// Log receives a line for every session's start and end. Nil: none.
	Log *zap.Logger
}

// Peer is who a session is for, as the host's log names them.
type Peer struct {
	PK     cipher.PubKey // the caller's key (the zero key: the local admin socket)
	Via    string        // how they came: "dmsg", "hypervisor", "cli"
	Origin string        // where from, if the carrier said (a hypervisor names its user's address)
}

// Host runs sessions. Make one with NewHost; Close ends every session.
type Host struct {
	cfg Config
	log *zap.Logger

	mu     sync.Mutex // guards perKey, live, closed
	perKey map[cipher.PubKey]int
	live   map[*hostSession]struct{}
	closed bool

	wg sync.WaitGroup // one per running Serve
}

// NewHost returns a host with cfg's defaults filled in.
func NewHost(cfg Config) *Host {
	if cfg.MaxSessionsPerKey <= 0 {
		cfg.MaxSessionsPerKey = DefaultMaxSessionsPerKey
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	return &Host{cfg: cfg, log: cfg.Log, perKey: map[cipher.PubKey]int{}, live: map[*hostSession]struct{}{}}
}

// Supported reports whether this system can host sessions.
func Supported() bool { return supported }

// Refuse answers a caller the host will not serve: it reads the caller's
// OPEN (for a few seconds at most), sends REFUSE with reason and closes
// conn. Nothing is started.
func Refuse(conn io.ReadWriteCloser, reason string) {
	defer conn.Close()
	if d, ok := conn.(interface{ SetDeadline(time.Time) error }); ok {
		d.SetDeadline(time.Now().Add(openTimeout))
	}
	if _, _, err := newFrameReader(conn).next(); err != nil {
		return
	}
	writeFrame(conn, frameRefuse, []byte(reason))
}

// hostSession is one session the host runs.
type hostSession struct {
	id     string
	peer   Peer
	req    Request
	conn   io.ReadWriteCloser
	wmu    sync.Mutex // serialises frames on conn; guards wbuf
	wbuf   []byte     // a frame being written
	active atomic.Int64
	proc   process
	ended  chan string // why the host ends it (idle, closing); buffered 1
}

func (s *hostSession) touch() { s.active.Store(time.Now().UnixNano()) }

func (s *hostSession) send(typ byte, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.sendLocked(typ, p)
}

func (s *hostSession) sendLocked(typ byte, p []byte) error {
	var err error
	s.wbuf, err = appendFrame(s.wbuf[:0], typ, p)
	if err != nil {
		return err
	}
	_, err = s.conn.Write(s.wbuf)
	return err
}

// end asks the session to finish with reason (the first reason wins).
func (s *hostSession) end(reason string) {
	select {
	case s.ended <- reason:
	default:
	}
}

// frameWriter writes a stream of output as frames of typ.
type frameWriter struct {
	s   *hostSession
	typ byte
}

func (w frameWriter) Write(p []byte) (int, error) {
	return writeChunks(p, func(c []byte) error {
		if err := w.s.send(w.typ, c); err != nil {
			return err
		}
		w.s.touch()
		return nil
	})
}

// Serve runs one session for peer on conn until the program exits, the
// caller leaves, it idles out or the host closes; it closes conn. The
// caller has decided that peer may have a shell.
func (h *Host) Serve(conn io.ReadWriteCloser, peer Peer) {
	defer conn.Close()
	who := "the local admin socket"
	if !peer.PK.IsNull() {
		who = peer.PK.Hex()
	}
	log := h.log.With(zap.String("remote", who), zap.String("via", peer.Via))
	if peer.Origin != "" {
		log = log.With(zap.String("origin", peer.Origin))
	}
	if d, ok := conn.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(time.Now().Add(openTimeout))
	}
	fr := newFrameReader(conn)
	typ, p, err := fr.next()
	if err != nil {
		log.Debug("pty: no request", zap.NamedError("err", err))
		return
	}
	if d, ok := conn.(interface{ SetReadDeadline(time.Time) error }); ok {
		d.SetReadDeadline(time.Time{})
	}
	req, err := parseOpen(typ, p)
	if err != nil {
		writeFrame(conn, frameRefuse, []byte(err.Error()))
		log.Info("pty session refused", zap.NamedError("err", err))
		return
	}
	if !supported {
		writeFrame(conn, frameRefuse, []byte(ErrUnsupported.Error()))
		return
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	s := &hostSession{id: hex.EncodeToString(rnd[:]), peer: peer, req: req, conn: conn, ended: make(chan string, 1)}
	log = log.With(zap.String("session", s.id))
	if reason := h.admit(s); reason != "" {
		writeFrame(conn, frameRefuse, []byte(reason))
		log.Info("pty session refused", zap.String("reason", reason))
		return
	}
	defer h.release(s)

	s.touch()
	shell := h.shell()
	// The program's output waits for ACCEPT: a quick one (printf x) wrote
	// before it otherwise, and the caller took the session as broken.
	s.wmu.Lock()
	proc, err := start(startSpec{req: req, shell: shell, dir: h.dir(), env: h.env(peer, req), stdout: frameWriter{s, frameStdout}, stderr: frameWriter{s, frameStderr}})
	if err != nil {
		s.wmu.Unlock()
		writeFrame(conn, frameRefuse, []byte(err.Error()))
		log.Warn("pty session failed to start", zap.NamedError("err", err))
		return
	}
	s.proc = proc
	acc := Accepted{Session: s.id, TTY: req.Mode == ModeShell || req.TTY}
	if req.Mode == ModeShell {
		acc.Shell = shell
	}
	js, _ := json.Marshal(acc)
	began := time.Now()
	what := []zap.Field{zap.String("mode", req.Mode), zap.Bool("tty", acc.TTY)}
	if req.Mode == ModeExec {
		what = append(what, zap.Strings("argv", req.Argv))
	} else {
		what = append(what, zap.String("shell", shell))
	}
	log.Info("pty session started", what...)
	err = s.sendLocked(frameAccept, js)
	s.wmu.Unlock()
	if err != nil {
		proc.kill()
		proc.wait(s)
		log.Info("pty session ended", zap.Duration("duration", time.Since(began)), zap.String("reason", "the caller left before it began"))
		return
	}

	// The caller's frames: input, size, signals. A read error is the
	// caller leaving.
	inDone := make(chan error, 1)
	go func() { inDone <- s.readInput(fr) }()
	exited := make(chan int, 1)
	go func() { exited <- proc.wait(s) }()
	var idle <-chan time.Time
	if h.cfg.IdleTimeout > 0 {
		t := time.NewTicker(max(min(h.cfg.IdleTimeout/4, 10*time.Second), time.Millisecond))
		defer t.Stop()
		idle = t.C
	}

	code, reason := -1, ""
	for done := false; !done; {
		select {
		case code = <-exited:
			done = true
		case err := <-inDone:
			reason = "the caller left"
			if err != nil && !errors.Is(err, io.EOF) && !isClosed(err) {
				reason = "the caller's stream failed: " + err.Error()
			}
			inDone <- err // for the wait below
			proc.kill()
			code = <-exited
			done = true
		case reason = <-s.ended:
			proc.kill()
			code = <-exited
			done = true
		case <-idle:
			if since := time.Since(time.Unix(0, s.active.Load())); since >= h.cfg.IdleTimeout {
				s.end(fmt.Sprintf("idle for %s (dmsgpty.idle_timeout)", h.cfg.IdleTimeout))
			}
		}
	}
	s.send(frameExit, exitPayload(code, reason))
	conn.Close() // ends readInput
	<-inDone
	fields := []zap.Field{zap.Duration("duration", time.Since(began).Round(time.Millisecond)), zap.Int("exit", code)}
	if reason != "" {
		fields = append(fields, zap.String("reason", reason))
	}
	log.Info("pty session ended", fields...)
}

// readInput applies the caller's frames until the stream ends.
func (s *hostSession) readInput(fr *frameReader) error {
	for {
		typ, p, err := fr.next()
		if err != nil {
			return err
		}
		s.touch()
		switch typ {
		case frameStdin:
			if _, err := s.proc.stdin().Write(p); err != nil && !isClosed(err) {
				return fmt.Errorf("writing the program's input: %w", err)
			}
		case frameEOF:
			s.proc.closeStdin()
		case frameResize:
			rows, cols, err := parseResize(p)
			if err != nil {
				return err
			}
			s.proc.resize(rows, cols)
		case frameSignal:
			if !slices.Contains(Signals, string(p)) {
				return fmt.Errorf("%w: signal %q", ErrProtocol, p)
			}
			s.proc.signal(string(p))
		default:
			return fmt.Errorf("%w: frame %d from the caller", ErrProtocol, typ)
		}
	}
}

// parseOpen checks the OPEN frame.
func parseOpen(typ byte, p []byte) (Request, error) {
	var req Request
	if typ != frameOpen {
		return req, fmt.Errorf("%w: frame %d before OPEN", ErrProtocol, typ)
	}
	if len(p) < 1 || p[0] != Version {
		return req, fmt.Errorf("this host speaks dmsgpty version %d only", Version)
	}
	if err := json.Unmarshal(p[1:], &req); err != nil {
		return req, fmt.Errorf("%w: bad request: %v", ErrProtocol, err)
	}
	switch req.Mode {
	case ModeShell:
	case ModeExec:
		if len(req.Argv) == 0 || req.Argv[0] == "" {
			return req, errors.New("exec needs a program to run")
		}
	default:
		return req, fmt.Errorf("unknown mode %q (want %s or %s)", req.Mode, ModeShell, ModeExec)
	}
	if strings.ContainsAny(req.Term, "\x00\n") || len(req.Term) > 64 {
		return req, errors.New("a bad TERM")
	}
	if req.Rows == 0 || req.Cols == 0 {
		req.Rows, req.Cols = 24, 80
	}
	return req, nil
}

// admit takes a session slot for s, or says why not.
func (h *Host) admit(s *hostSession) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return "the visor is stopping"
	case len(h.live) >= h.cfg.MaxSessions:
		return fmt.Sprintf("this visor already runs %d sessions, its most (dmsgpty)", h.cfg.MaxSessions)
	case h.perKey[s.peer.PK] >= h.cfg.MaxSessionsPerKey:
		return fmt.Sprintf("%s already has %d sessions open here, the most one key may (dmsgpty.max_sessions): close one", s.peer.PK.Short(), h.cfg.MaxSessionsPerKey)
	}
	h.perKey[s.peer.PK]++
	h.live[s] = struct{}{}
	h.wg.Add(1)
	return ""
}

func (h *Host) release(s *hostSession) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.perKey[s.peer.PK]--; h.perKey[s.peer.PK] <= 0 {
		delete(h.perKey, s.peer.PK)
	}
	delete(h.live, s)
	h.wg.Done()
}

// SessionCount is how many sessions run now.
func (h *Host) SessionCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.live)
}

// Close ends every session (their programs are killed) and waits for them;
// later callers are refused. It is idempotent.
func (h *Host) Close() error {
	h.mu.Lock()
	h.closed = true
	for s := range h.live {
		s.end("the visor is stopping")
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

// shell is the program shell sessions run.
func (h *Host) shell() string {
	if h.cfg.Shell != "" {
		return h.cfg.Shell
	}
	if sh := os.Getenv("SHELL"); sh != "" {
		return sh
	}
	if sh := loginShell(); sh != "" {
		return sh
	}
	return "/bin/sh"
}

func (h *Host) dir() string {
	if h.cfg.Dir != "" {
		return h.cfg.Dir
	}
	if home, err := os.UserHomeDir(); err == nil {
		return home
	}
	return "/"
}

// hiddenEnv are variables of the visor a session does not inherit.
var hiddenEnv = []string{"APP_KEY", "APP_SERVER_ADDR", "VISOR_PK", "SKYWIRE_CLI_ADDR", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"}

// env is the session's environment: the visor's, less hiddenEnv, with TERM
// for a pty and SKYWIRE_PTY_PEER naming the caller's key.
func (h *Host) env(peer Peer, req Request) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if slices.Contains(hiddenEnv, k) || k == "TERM" || k == "SKYWIRE_PTY_PEER" {
			continue
		}
		env = append(env, kv)
	}
	if req.Mode == ModeShell || req.TTY {
		term := req.Term
		if term == "" {
			term = "xterm-256color"
		}
		env = append(env, "TERM="+term)
	}
	if !peer.PK.IsNull() {
		env = append(env, "SKYWIRE_PTY_PEER="+peer.PK.Hex())
	}
	return env
}

// startSpec is what start runs.
type startSpec struct {
	req            Request
	shell, dir     string
	env            []string
	stdout, stderr io.Writer
}

// process is a started program, on a pty or on pipes.
type process interface {
	stdin() io.Writer
	closeStdin()
	resize(rows, cols uint16)
	signal(name string)
	// kill ends the program's process group: SIGHUP, then SIGKILL.
	kill()
	// wait returns the exit status once the program has exited and its
	// output has been relayed (or has stopped coming for drainGrace).
	wait(s *hostSession) int
}

// drain waits for done, or until s has had no output for drainGrace.
func drain(s *hostSession, done <-chan struct{}) bool {
	t := time.NewTicker(drainGrace / 4)
	defer t.Stop()
	for {
		select {
		case <-done:
			return true
		case <-t.C:
			if time.Since(time.Unix(0, s.active.Load())) >= drainGrace {
				return false
			}
		}
	}
}

// isClosed reports an error of a stream or pipe closed on our side.
func isClosed(err error) bool {
	return errors.Is(err, os.ErrClosed) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed)
}
