package router

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Drop reasons: why the router let a packet go.
const (
	DropUnknownRoute   = "unknown_route"   // no rule for its route id (expired, never set up, or forged)
	DropWrongTransport = "wrong_transport" // its rule expects it on another transport
	DropBeforeSetup    = "before_setup"    // data on a route not yet set up, or setup packets after
	DropQueueFull      = "queue_full"      // the next hop's queue was full: the route was closed
)

// dropReasons in a fixed order (the counters' index).
var dropReasons = []string{DropUnknownRoute, DropWrongTransport, DropBeforeSetup, DropQueueFull}

// Setup outcomes, as route-setup failures are counted.
const (
	SetupOK       = "ok"
	SetupNoRoute  = "no_route" // no path: no transport and none found
	SetupRefused  = "refused"  // a hop or the destination said no
	SetupTimeout  = "timeout"  // no answer in time
	SetupCanceled = "canceled" // the caller gave up
	SetupFailed   = "failed"   // anything else (a transport broke, …)
)

// setupOutcome classifies a Dial's error.
func setupOutcome(err error) string {
	switch {
	case err == nil:
		return SetupOK
	case errors.Is(err, ErrNoRoute):
		return SetupNoRoute
	case errors.Is(err, ErrRefused):
		return SetupRefused
	case errors.Is(err, context.DeadlineExceeded):
		return SetupTimeout
	case errors.Is(err, context.Canceled):
		return SetupCanceled
	}
	return SetupFailed
}

// stats are the router's counters.
type stats struct {
	drops [4]atomic.Uint64 // by dropReasons' index

	mu     sync.Mutex
	setups map[string]uint64 // by outcome
	onDial func(outcome string, took time.Duration)
}

func (s *stats) drop(reason int) { s.drops[reason].Add(1) }

func (s *stats) dialed(err error, took time.Duration) {
	o := setupOutcome(err)
	s.mu.Lock()
	if s.setups == nil {
		s.setups = map[string]uint64{}
	}
	s.setups[o]++
	f := s.onDial
	s.mu.Unlock()
	if f != nil {
		f(o, took)
	}
}

// Drops counts the packets the router dropped, by reason.
func (r *Router) Drops() map[string]uint64 {
	out := make(map[string]uint64, len(dropReasons))
	for i, reason := range dropReasons {
		out[reason] = r.stats.drops[i].Load()
	}
	return out
}

// Setups counts the routes this visor set up (Dial), by outcome.
func (r *Router) Setups() map[string]uint64 {
	r.stats.mu.Lock()
	defer r.stats.mu.Unlock()
	out := make(map[string]uint64, len(r.stats.setups))
	for k, v := range r.stats.setups {
		out[k] = v
	}
	return out
}

// OnDial makes f see every Dial's outcome and how long it took (for a
// latency histogram).
func (r *Router) OnDial(f func(outcome string, took time.Duration)) {
	r.stats.mu.Lock()
	r.stats.onDial = f
	r.stats.mu.Unlock()
}
