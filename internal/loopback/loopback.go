// Package loopback gives tests real TCP connections on loopback, closed
// when the test ends: the two ends of one, and a flooding host's idle ones.
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

// OtherHost is a loopback address other than 127.0.0.1 (Linux answers the
// whole of 127/8): connections from it count as another host's for limits
// kept per source address.
var OtherHost = net.IPv4(127, 0, 0, 2)

// Idle opens n connections to addr from OtherHost and leaves them idle, as
// a flooding host does; they are closed when the test ends.
func Idle(tb testing.TB, addr string, n int) []net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: OtherHost}}
	conns := make([]net.Conn, 0, n)
	tb.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			tb.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}
