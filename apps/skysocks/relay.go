package skysocks

import (
	"bufio"
	"io"
	"net"
	"sync"
)

// joiner is a route connection the visor can relay to a local socket by
// itself (the app SDK's RPCConn): Join hands the socket over; Attach, the
// fallback, gives a connection to relay here.
type joiner interface {
	Join(local net.Conn) error
	Attach() (net.Conn, error)
}

// flush writes what a handshake's reader holds beyond it.
func flush(dst net.Conn, pending *bufio.Reader) error {
	if pending == nil || pending.Buffered() == 0 {
		return nil
	}
	p, _ := pending.Peek(pending.Buffered())
	_, err := dst.Write(p)
	pending.Discard(len(p))
	return err
}

// pass carries local ↔ route after a handshake: the visor relays them
// itself if route can be joined, else they are relayed here. lb and rb hold
// bytes read past the handshake on each.
func pass(local net.Conn, lb *bufio.Reader, route net.Conn, rb *bufio.Reader) {
	if flush(route, lb) != nil || flush(local, rb) != nil {
		return
	}
	if j, ok := route.(joiner); ok {
		if j.Join(local) == nil {
			return
		}
		dc, err := j.Attach()
		if err != nil {
			return
		}
		defer dc.Close()
		route = dc
	}
	relay(local, route)
}

// relay copies a ↔ b until both directions end, then closes both. A clean
// end of one direction half-closes its destination, so the far end reads
// EOF and may still answer; an error resets both (a cut route must never
// look like a complete transfer).
func relay(a, b net.Conn) {
	var aborted, ended sync.Once
	abort := func() {
		aborted.Do(func() {
			reset(a)
			reset(b)
		})
	}
	end := func() {
		ended.Do(func() {
			a.Close()
			b.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyHalf(a, b, abort, end)
	}()
	copyHalf(b, a, abort, end)
	wg.Wait()
	end()
}

// copyHalf copies src to dst. io.Copy on raw connections lets the kernel
// splice TCP to TCP. An error resets both; a clean end half-closes dst, or
// closes both if dst cannot be half-closed.
func copyHalf(dst, src net.Conn, abort, end func()) {
	if _, err := io.Copy(dst, src); err != nil {
		abort()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	end()
}

// reset closes c so that its peer sees an error, not an end of stream (a
// TCP reset; an app's data socket passes it on as a reset route).
func reset(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}
