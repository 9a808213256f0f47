package dmsg

import (
	"net"
	"sync"

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
	queue chan *Stream // capacity AcceptBacklog
	done  chan struct{}

	mu       sync.Mutex // guards reserved, closed
	reserved int        // slots promised to streams still shaking hands
	closed   bool
}

// Accept waits for the next stream.
func (l *Listener) Accept() (net.Conn, error) { return l.AcceptStream() }

// AcceptStream waits for the next stream.
func (l *Listener) AcceptStream() (*Stream, error) {
	select {
	case s := <-l.queue:
		return s, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Addr is the listener's dmsg address.
func (l *Listener) Addr() net.Addr { return l.addr }

// Close stops accepting; streams not yet accepted are closed.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	l.c.removeListener(l)
	for {
		select {
		case s := <-l.queue:
			s.Close()
		default:
			return nil
		}
	}
}

// reserve promises a queue slot to a stream in its handshake.
func (l *Listener) reserve() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.reserved+len(l.queue) >= cap(l.queue) {
		return false
	}
	l.reserved++
	return true
}

func (l *Listener) unreserve() {
	l.mu.Lock()
	l.reserved--
	l.mu.Unlock()
}

// deliver queues s in its reserved slot.
func (l *Listener) deliver(s *Stream) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reserved--
	if l.closed {
		s.Close()
		return
	}
	l.queue <- s // never blocks: the slot was reserved
}
