//go:build linux

package appserver_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyfleet/skywire/apps/sdk"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/internal/packets"
	"github.com/skyfleet/skywire/visor"
)

// seqpacketPair is a packet device for the test: one end is the app's, the
// other is handed to the visor (each read one packet, as on a TUN).
func seqpacketPair(t *testing.T) (mine, theirs *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs = os.NewFile(uintptr(fds[0]), "mine"), os.NewFile(uintptr(fds[1]), "theirs")
	t.Cleanup(func() { mine.Close(); theirs.Close() })
	return mine, theirs
}

// A packet device joined to a connection over 2 hops: the visor relays its
// packets as frames both ways, byte-exact and in order; other frames pass
// between the route and the control channel; the counters are exact;
// control-channel kinds from the route never reach the app; what is not a
// packet device is refused; the relay's end is told and closes the device.
func TestPacketJoin(t *testing.T) {
	n := startNet(t, 3, func(int, []cipher.PubKey) []visor.AppConfig { return []visor.AppConfig{holderAt(61)} })
	a, _ := impersonate(t, n, 0)
	b, _ := impersonate(t, n, 2)
	l, err := b.Listen(61)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var rc *sdk.RPCConn
	waitFor(t, "dial over 2 hops", func() bool {
		rc, err = a.DialRPC(context.Background(), n.Nodes[2].PK(), 61)
		return err == nil
	})
	far := <-accepted
	defer far.Close()

	// Refused, and nothing consumed: a regular file, a stream socket.
	f, err := os.CreateTemp(t.TempDir(), "notadevice")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := rc.JoinPackets(f); err == nil || !strings.Contains(err.Error(), "not a packet device") {
		t.Fatalf("a regular file: %v", err)
	}
	_, stream := loopback.Pair(t)
	if _, err := rc.JoinPackets(stream.(*net.TCPConn)); err == nil {
		t.Fatal("joined a stream socket as a packet device")
	}

	mine, theirs := seqpacketPair(t)
	ctl, err := rc.JoinPackets(theirs)
	if err != nil {
		t.Fatal(err)
	}
	theirs.Close() // the visor holds its own copy
	defer ctl.Close()

	// Device → route, sizes up to a 64 KiB offload segment.
	sizes := []int{1, 40, 1500, 16384, 65535 + 10}
	sent := 0
	go func() {
		for i, size := range sizes {
			mine.Write(bytes.Repeat([]byte{byte(i + 1)}, size))
		}
	}()
	fr := bufio.NewReader(far)
	buf := make([]byte, packets.MaxBody)
	for i, size := range sizes {
		kind, body, err := packets.ReadFrame(fr, buf)
		if err != nil || kind != packets.KindPacket || len(body) != size || body[0] != byte(i+1) || body[size-1] != byte(i+1) {
			t.Fatalf("packet %d at the far end: kind %d, %d bytes, %v", i, kind, len(body), err)
		}
		sent += size
	}
	// Route → device, and other kinds both ways; the control channel's own
	// kinds from the route are dropped.
	fw := &packets.Writer{W: far}
	received := 0
	for i, size := range sizes {
		if err := fw.Write(packets.KindPacket, bytes.Repeat([]byte{byte(i + 100)}, size)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, packets.MaxBody)
		k, err := mine.Read(got)
		if err != nil || k != size || got[0] != byte(i+100) {
			t.Fatalf("packet %d at the device: %d bytes, %v", i, k, err)
		}
		received += size
	}
	fw.Write(packets.KindEnd, []byte("forged"))
	fw.Write(packets.KindStats, nil)
	fw.Write(1, []byte("probe"))
	kind, body, err := packets.ReadFrame(ctl, buf)
	if err != nil || kind != 1 || string(body) != "probe" {
		t.Fatalf("on the control channel: kind %d %q %v", kind, body, err)
	}
	if err := packets.WriteFrame(ctl, 2, []byte("answer")); err != nil {
		t.Fatal(err)
	}
	if kind, body, err := packets.ReadFrame(fr, buf); err != nil || kind != 2 || string(body) != "answer" {
		t.Fatalf("from the control channel at the far end: kind %d %q %v", kind, body, err)
	}
	packets.WriteFrame(ctl, packets.KindStats, nil)
	kind, body, err = packets.ReadFrame(ctl, buf)
	if up, down, ok := packets.ParseStats(body); err != nil || kind != packets.KindStats || !ok || up != uint64(sent) || down != uint64(received) {
		t.Fatalf("counters: kind %d, %d up %d down (sent %d, received %d), %v", kind, up, down, sent, received, err)
	}

	// The far end closes: the app is told, and the device is closed.
	far.Close()
	ctl.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		kind, body, err = packets.ReadFrame(ctl, buf)
		if err != nil {
			t.Fatalf("no end frame: %v", err)
		}
		if kind == packets.KindEnd {
			break
		}
	}
	if _, _, err := packets.ReadFrame(ctl, buf); err != io.EOF {
		t.Fatalf("after the end frame: %v", err)
	}
	mine.SetReadDeadline(time.Now().Add(10 * time.Second))
	if k, err := mine.Read(buf); k != 0 || (err != nil && err != io.EOF) {
		t.Fatalf("the device after the end: %d bytes, %v", k, err)
	}

	// An app that closes its control channel ends the relay and the route.
	rc2, err := a.DialRPC(context.Background(), n.Nodes[2].PK(), 61)
	if err != nil {
		t.Fatal(err)
	}
	far2 := <-accepted
	defer far2.Close()
	_, theirs2 := seqpacketPair(t)
	ctl2, err := rc2.JoinPackets(theirs2)
	if err != nil {
		t.Fatal(err)
	}
	ctl2.Close()
	far2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(far2); err != nil {
		t.Fatalf("the route after the app closed the join: %v", err)
	}
}
