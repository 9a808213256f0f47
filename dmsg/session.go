package dmsg

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
)

// streamWindow is yamux's per-stream receive window: large enough to keep a
// relayed stream busy, bounded so a stalled reader costs at most this much.
const streamWindow = 2 << 20

func yamuxConfig(log *zap.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.AcceptBacklog = AcceptBacklog * 4
	c.KeepAliveInterval = 5 * time.Second // a dead session is noticed in seconds
	c.ConnectionWriteTimeout = 10 * time.Second
	c.MaxStreamWindowSize = streamWindow
	c.StreamOpenTimeout = HandshakeTimeout
	c.StreamCloseTimeout = time.Minute
	c.LogOutput = nil
	c.Logger = zap.NewStdLog(log.Named("yamux"))
	return c
}

// session is one client–server session as either end sees it.
type session struct {
	remote cipher.PubKey // the other end's key
	ymx    *yamux.Session
	source string // server side: the client's source address (acceptor.Source)

	mu         sync.Mutex // guards streams
	streams    int        // streams relayed for this session (server side)
	maxStreams int
}

// acquire takes a stream slot; false if the session is at its limit.
func (s *session) acquire() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams >= s.maxStreams {
		return false
	}
	s.streams++
	return true
}

func (s *session) release() {
	s.mu.Lock()
	s.streams--
	s.mu.Unlock()
}

// splice copies between a and b both ways until both directions end,
// half-closing each side as its input ends.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		io.CopyBuffer(dst, src, buf)
		dst.Close() // yamux Close is a half-close: FIN to dst's peer
	}
	go pipe(a, b)
	go pipe(b, a)
	wg.Wait()
}

// streamConn gives a yamux stream full net.Conn semantics: a deadline in the
// past fails Read and Write at once (yamux checks deadlines only when it
// must wait), and Close makes pending and later calls fail (yamux's Close
// is a half-close that leaves reads open).
type streamConn struct {
	*yamux.Stream
	closed atomic.Bool

	mu     sync.Mutex // guards rd, wd
	rd, wd time.Time
}

func wrapStream(s *yamux.Stream) *streamConn { return &streamConn{Stream: s} }

func expired(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }

func (c *streamConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	rd := c.rd
	c.mu.Unlock()
	switch {
	case c.closed.Load():
		return 0, net.ErrClosed
	case expired(rd):
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Stream.Read(p)
	if err != nil && c.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	wd := c.wd
	c.mu.Unlock()
	switch {
	case c.closed.Load():
		return 0, net.ErrClosed
	case expired(wd):
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Stream.Write(p)
	if err != nil && c.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

func (c *streamConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd, c.wd = t, t
	c.mu.Unlock()
	return c.Stream.SetDeadline(t)
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rd = t
	c.mu.Unlock()
	return c.Stream.SetReadDeadline(t)
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wd = t
	c.mu.Unlock()
	return c.Stream.SetWriteDeadline(t)
}

// Close sends FIN and wakes every pending call; it is idempotent.
func (c *streamConn) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	err := c.Stream.Close()
	c.Stream.SetDeadline(time.Unix(1, 0))
	return err
}
