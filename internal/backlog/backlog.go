// Package backlog is a listener's queue of accepted connections with slots
// reserved for ones still shaking hands, so a handshake is refused (busy)
// up front rather than finished and then dropped. dmsg and router
// listeners use it.
package backlog

import (
	"io"
	"sync"
)

// Queue holds up to its capacity of accepted T, counting reserved slots.
type Queue[T io.Closer] struct {
	ch   chan T
	done chan struct{}

	mu       sync.Mutex // guards reserved, closed
	reserved int        // slots promised to handshakes in progress
	closed   bool
}

// New makes a queue of capacity n.
func New[T io.Closer](n int) *Queue[T] {
	return &Queue[T]{ch: make(chan T, n), done: make(chan struct{})}
}

// Reserve promises a slot; false if the queue is closed or full.
func (q *Queue[T]) Reserve() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.reserved+len(q.ch) >= cap(q.ch) {
		return false
	}
	q.reserved++
	return true
}

// Unreserve gives back a slot whose handshake failed.
func (q *Queue[T]) Unreserve() {
	q.mu.Lock()
	q.reserved--
	q.mu.Unlock()
}

// Deliver puts c in its reserved slot (closing it if the queue has closed).
func (q *Queue[T]) Deliver(c T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.reserved--
	if q.closed {
		c.Close()
		return
	}
	q.ch <- c // never blocks: the slot was reserved
}

// Accept waits for the next delivered T; ok is false once the queue closed.
func (q *Queue[T]) Accept() (c T, ok bool) {
	select {
	case c := <-q.ch:
		return c, true
	case <-q.done:
		return c, false
	}
}

// Close stops the queue and closes what was delivered but not accepted.
// It reports false if the queue was already closed.
func (q *Queue[T]) Close() bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.closed = true
	close(q.done)
	q.mu.Unlock()
	for {
		select {
		case c := <-q.ch:
			c.Close()
		default:
			return true
		}
	}
}
