package dmsg

import (
	"net"
	"sync"

	"github.com/skyfleet/skywire/internal/backlog"
	"github.com/skyfleet/skywire/noise"
)

// Stream is an end-to-end encrypted connection between two dmsg clients.
type Stream struct {
	*noise.Conn
	local, remote Addr
	once          sync.Once
	release       func() // frees the local port of a dialled stream
}

// LocalAddr is our dmsg address.
func (s *Stream) LocalAddr() net.Addr { return s.local }

// RemoteAddr is the peer's dmsg address.
func (s *Stream) RemoteAddr() net.Addr { return s.remote }

// Close ends the stream.
func (s *Stream) Close() error {
	err := s.Conn.Close()
	s.once.Do(func() {
		if s.release != nil {
			s.release()
		}
	})
	return err
}

// Listener accepts streams to one dmsg port.
type Listener struct {
	c     *Client
	addr  Addr
	queue *backlog.Queue[*Stream] // capacity AcceptBacklog
}

// Accept waits for the next stream.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptStream() }

// AcceptStream waits for the next stream.
func (l *Listener) AcceptStream() (*Stream, error) {
	s, ok := l.queue.Accept()
	if !ok {
		return nil, net.ErrClosed
	}
	return s, nil
}

// Addr is the listener's dmsg address.
func (l *Listener) Addr() net.Addr { return l.addr }

// Close stops accepting; streams not yet accepted are closed.
func (l *Listener) Close() error {
	if l.queue.Close() {
		l.c.removeListener(l)
	}
	return nil
}
