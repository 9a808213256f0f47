package transport

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkTCPReference is plain loopback TCP written like a transport is:
// one write per full packet. Transport throughput is quoted against it.
func BenchmarkTCPReference(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, MaxPacket)
	b.SetBytes(MaxPacket)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransport sends full data packets over each transport type
// between two managers (all in this process, sharing its cores).
func BenchmarkTransport(b *testing.B) {
	s := startServices(b)
	for _, typ := range Types {
		b.Run(string(typ), func(b *testing.B) { benchTransport(b, s, typ) })
	}
}

func benchTransport(b *testing.B, s *services, typ Type) {
	var got atomic.Int64
	recv := startPeerWith(b, s, func(_ *Transport, p Packet) { got.Add(int64(len(p))) }, typ)
	send := startPeer(b, s, typ)
	if typ == STCP {
		send.table[recv.pk] = recv.stcp.Addr().String()
	}
	waitResolvable(b, s, recv, typ)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tp, err := send.m.Dial(ctx, recv.pk, typ)
	if err != nil {
		b.Fatal(err)
	}
	pkt := MakePacket(make([]byte, MaxPacket), PacketData, 1, MaxPayload)
	b.SetBytes(MaxPacket)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := tp.WritePacket(pkt); err != nil {
			b.Fatal(err)
		}
	}
	for got.Load() < int64(b.N)*MaxPacket { // until all arrived
		time.Sleep(100 * time.Microsecond)
	}
}

// BenchmarkDialSTCP is a whole stcp transport setup: TCP connect, Noise XK
// and the settlement, then removal.
func BenchmarkDialSTCP(b *testing.B) {
	s := &services{} // no discovery: nothing to register
	a, c := startPeer(b, s, STCP), startPeer(b, s, STCP)
	a.table[c.pk] = c.stcp.Addr().String()
	b.ReportAllocs()
	for b.Loop() {
		tp, err := a.m.Dial(context.Background(), c.pk, STCP)
		if err != nil {
			b.Fatal(err)
		}
		tp.close(errRemoved)
		for len(a.m.Transports()) > 0 {
			time.Sleep(10 * time.Microsecond)
		}
	}
}
