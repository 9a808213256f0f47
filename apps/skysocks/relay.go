package skysocks

import (
	"bufio"
	"io"
	"net"
	"sync"
)

// relay copies a ↔ b until both directions end, then closes both. ab and bb
// hold bytes already read from a and b past the handshake (nil: none). A
// clean end of one direction half-closes its destination, so the far end
// reads EOF and may still answer; an error ends both.
func relay(a net.Conn, ab *bufio.Reader, b net.Conn, bb *bufio.Reader) {
	var once sync.Once
	abort := func() {
		once.Do(func() {
			a.Close()
			b.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyHalf(a, b, bb, abort)
	}()
	copyHalf(b, a, ab, abort)
	wg.Wait()
	abort()
}

// copyHalf copies src (first what pending holds) to dst. io.Copy on raw
// connections lets the kernel splice TCP to TCP.
func copyHalf(dst, src net.Conn, pending *bufio.Reader, abort func()) {
	if pending != nil && pending.Buffered() > 0 {
		p, _ := pending.Peek(pending.Buffered())
		if _, err := dst.Write(p); err != nil {
			abort()
			return
		}
	}
	if _, err := io.Copy(dst, src); err != nil {
		abort()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		return
	}
	abort()
}
