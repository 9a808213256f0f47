// Package loopback gives tests the two ends of a real TCP connection on
// 127.0.0.1, closed when the test ends.
package loopback

import (
	"net"
	"testing"
)

// Pair returns the dialling and the accepting end of a loopback TCP
// connection.
func Pair(tb testing.TB) (net.Conn, net.Conn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	b := <-ch
	if b == nil {
		a.Close()
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
