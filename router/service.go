package router

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// The router's own port (0) answers two requests, the first byte of a
// route to it:
//
//	'p'                   ping: nothing more; the route's PING/PONG packets measure it
//	'b' ‖ BE64 n ‖ n bytes   bench: the router reads and discards n bytes, then answers BE64 n
const (
	cmdPing  = 'p'
	cmdBench = 'b'
)

// serveRouterPort answers routes to port 0 until l closes.
func (r *Router) serveRouterPort(l *Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer c.Close()
			var cmd [1]byte
			if _, err := io.ReadFull(c, cmd[:]); err != nil {
				return
			}
			switch cmd[0] {
			case cmdPing:
				io.Copy(io.Discard, c) // until the pinger closes
			case cmdBench:
				var n [8]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				want := int64(binary.BigEndian.Uint64(n[:]))
				if got, err := io.CopyN(io.Discard, c, want); err != nil || got != want {
					return
				}
				c.Write(n[:])
			}
		}()
	}
}

// PingResult is what Ping measured.
type PingResult struct {
	Hops    []Hop
	HopRTTs []time.Duration // each hop's transport round trip at setup
	RTTs    []time.Duration // the route's round trips
	Setup   time.Duration   // how long the route took to set up
}

// Ping sets up a route to dst's router and measures its round trip count
// times.
func (r *Router) Ping(ctx context.Context, dst cipher.PubKey, count int, opts DialOptions) (*PingResult, error) {
	began := time.Now()
	c, err := r.Dial(ctx, dst, PortRouter, opts)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res := &PingResult{Hops: c.Hops(), HopRTTs: c.HopRTTs(), Setup: time.Since(began)}
	if _, err := c.Write([]byte{cmdPing}); err != nil {
		return nil, err
	}
	for i := 0; i < count; i++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		rtt, err := c.Ping(pctx)
		cancel()
		if err != nil {
			return res, fmt.Errorf("ping %d: %w", i+1, err)
		}
		res.RTTs = append(res.RTTs, rtt)
	}
	return res, nil
}

// BenchResult is what Bench measured.
type BenchResult struct {
	Hops     []Hop
	Bytes    int64
	Duration time.Duration // from the first byte to the answer
}

// Bench sends n bytes over a route to dst's router and times it.
func (r *Router) Bench(ctx context.Context, dst cipher.PubKey, n int64, opts DialOptions) (*BenchResult, error) {
	c, err := r.Dial(ctx, dst, PortRouter, opts)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	hdr := make([]byte, 9)
	hdr[0] = cmdBench
	binary.BigEndian.PutUint64(hdr[1:], uint64(n))
	began := time.Now()
	if _, err := c.Write(hdr); err != nil {
		return nil, err
	}
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			return nil, err
		}
		left -= k
	}
	var ack [8]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		return nil, fmt.Errorf("waiting for the far end: %w", err)
	}
	if int64(binary.BigEndian.Uint64(ack[:])) != n {
		return nil, fmt.Errorf("the far end counted %d bytes, not %d", binary.BigEndian.Uint64(ack[:]), n)
	}
	return &BenchResult{Hops: c.Hops(), Bytes: n, Duration: time.Since(began)}, nil
}
