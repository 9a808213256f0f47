// Package acceptor is the accept loop every listener of ours runs. It tells
// a temporary accept error (the process is out of file descriptors or
// buffers, a connection aborted before it was accepted) from a permanent
// one: on the first it backs off and goes on, as net/http does, so a flood
// that exhausts descriptors cannot kill a listener; the second ends the
// loop with an error the owner must report. And it admits connections by
// source: at most Limits.PerSource at once from one address (an IPv6
// address counts by its /64) and Limits.Total in all, so one host cannot
// take every slot (of pending handshakes, say) from the others.
package acceptor

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// Limits bounds the connections a loop holds at once. Zero: no bound.
type Limits struct {
	PerSource int
	Total     int
}

// Backoff after a temporary accept error: doubling from minBackoff to
// maxBackoff, reset by a successful accept.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Temporary reports whether an accept error is one to wait out.
func Temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Source is the key connections from one host share: its IPv4 address, or
// its IPv6 address's /64 ("" for an address that is not IP).
func Source(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return ""
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// Admission counts connections held per source. Its zero value with
// Limits set is ready; it is safe for concurrent use.
type Admission struct {
	Limits Limits

	mu    sync.Mutex // guards n, total
	n     map[string]int
	total int
}

// Admit takes a slot for a connection from a, or reports false when a's
// source or the whole holds its limit. The release function frees the slot
// (once, however often it is called).
func (ad *Admission) Admit(a net.Addr) (release func(), ok bool) {
	src := Source(a)
	ad.mu.Lock()
	defer ad.mu.Unlock()
	if ad.Limits.Total > 0 && ad.total >= ad.Limits.Total ||
		ad.Limits.PerSource > 0 && src != "" && ad.n[src] >= ad.Limits.PerSource {
		return nil, false
	}
	if ad.n == nil {
		ad.n = map[string]int{}
	}
	ad.n[src]++
	ad.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			ad.mu.Lock()
			defer ad.mu.Unlock()
			ad.total--
			if ad.n[src]--; ad.n[src] <= 0 {
				delete(ad.n, src)
			}
		})
	}, true
}

// Held is how many slots are taken.
func (ad *Admission) Held() int {
	ad.mu.Lock()
	defer ad.mu.Unlock()
	return ad.total
}

// Serve accepts on ln until ctx ends (then it returns nil) or ln fails for
// good (then it returns the error). Each admitted connection goes to handle
// on its own goroutine, with a context that ends when Serve stops, holding
// its slot until handle calls done or returns; a connection over the
// limits is closed at once. Serve closes ln and waits for every handle
// before it returns (a handle must end when its context does).
func Serve(ctx context.Context, ln net.Listener, lim Limits, handle func(ctx context.Context, c net.Conn, done func())) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before the wait: a failed listener ends its handlers
	ad := &Admission{Limits: lim}
	backoff := time.Duration(0)
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if Temporary(err) {
				backoff = min(max(2*backoff, minBackoff), maxBackoff)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				continue
			}
			return err
		}
		backoff = 0
		release, ok := ad.Admit(c.RemoteAddr())
		if !ok {
			c.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer release()
			handle(ctx, c, release)
		}()
	}
}

// Listener wraps ln for servers that run their own accept loop (net/http):
// Accept waits out temporary errors itself, and closes, without returning
// them, connections from a source that already has PerSource open (or past
// Total); a connection's slot is freed when it is closed.
func Listener(ln net.Listener, lim Limits) net.Listener {
	return &listener{Listener: ln, ad: &Admission{Limits: lim}}
}

type listener struct {
	net.Listener
	ad *Admission
}

func (l *listener) Accept() (net.Conn, error) {
	backoff := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !Temporary(err) || errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		release, ok := l.ad.Admit(c.RemoteAddr())
		if !ok {
			c.Close()
			continue
		}
		return &conn{Conn: c, release: release}, nil
	}
}

type conn struct {
	net.Conn
	release func()
}

func (c *conn) Close() error {
	c.release()
	return c.Conn.Close()
}
