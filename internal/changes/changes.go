// Package changes broadcasts "something changed": a waiter takes a
// channel with Wait that closes at the next Notify. Take it before reading
// the state it guards, and no change is missed between the read and the
// wait.
package changes

import "sync"

// Signal is a broadcast; its zero value is ready.
type Signal struct {
	mu sync.Mutex
	ch chan struct{} // nil until someone waits
}

// Notify wakes every current waiter.
func (s *Signal) Notify() {
	s.mu.Lock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
	s.mu.Unlock()
}

// Wait returns a channel that closes at the next Notify.
func (s *Signal) Wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}
