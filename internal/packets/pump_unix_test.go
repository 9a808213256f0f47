//go:build unix

package packets

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"os"
	"syscall"
	"testing"
)

// Pump carries packets between a device and a stream both ways at once,
// byte-exact and in order (many small ones batched), passes other frames
// on, counts, and ends when the stream does.
func TestPump(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET, 0)
	if err != nil {
		t.Skip("no SOCK_SEQPACKET:", err)
	}
	syscall.SetNonblock(fds[0], true)
	syscall.SetNonblock(fds[1], true)
	app, dev := os.NewFile(uintptr(fds[0]), "app"), os.NewFile(uintptr(fds[1]), "dev")
	defer app.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	near, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	far, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	var n Counters
	others := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Pump(context.Background(), near, bufio.NewReader(near), dev, func(kind byte, body []byte) error {
			others <- string(body)
			return nil
		}, &Writer{W: near}, &n)
		dev.Close()
	}()
	const count = 2000
	packet := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1+i%1400) }
	total := 0
	for i := range count {
		total += len(packet(i))
	}
	go func() { // device → stream
		for i := range count {
			if _, err := app.Write(packet(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // stream → device
		fw := &Writer{W: far}
		for i := range count {
			fw.Write(KindPacket, packet(i))
		}
		fw.Write(1, []byte("a probe"))
	}()
	fr := bufio.NewReader(far)
	buf := make([]byte, MaxBody)
	for i := range count {
		kind, body, err := ReadFrame(fr, buf)
		if err != nil || kind != KindPacket || !bytes.Equal(body, packet(i)) {
			t.Fatalf("frame %d: kind %d, %d bytes, %v", i, kind, len(body), err)
		}
	}
	got := make([]byte, MaxBody)
	for i := range count {
		k, err := app.Read(got)
		if err != nil || !bytes.Equal(got[:k], packet(i)) {
			t.Fatalf("packet %d: %d bytes, %v", i, k, err)
		}
	}
	if s := <-others; s != "a probe" {
		t.Fatalf("other frame: %q", s)
	}
	if n.Up.Load() != uint64(total) || n.Down.Load() != uint64(total) {
		t.Fatalf("counted %d up, %d down; moved %d each way", n.Up.Load(), n.Down.Load(), total)
	}
	up, down, ok := ParseStats(n.Stats())
	if !ok || up != uint64(total) || down != uint64(total) {
		t.Fatalf("stats: %d %d %v", up, down, ok)
	}
	far.Close()
	if err := <-done; err == nil {
		t.Fatal("the pump ended without an error when its stream did")
	}
}
