//go:build unix

package appserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/apps/sdk"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/visor"
)

// openFDs counts this process's open descriptors (Linux).
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

// A request with no key is bounded before it is buffered: 64 MiB of one
// JSON value get the connection closed after about appproto.MaxRequest.
func TestGatewayBoundsRequests(t *testing.T) {
	n := startNet(t, 2, func(int, []cipher.PubKey) []visor.AppConfig { return nil })
	conn, err := net.Dial("tcp", n.Nodes[0].AppServerAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(conn, `{"method":"x.Write","params":[{"conn":1,"data":"`)
	chunk := bytes.Repeat([]byte("A"), 64<<10)
	sent := 0
	for sent < 64<<20 {
		k, err := conn.Write(chunk)
		sent += k
		if err != nil {
			break
		}
	}
	if sent >= 64<<20 {
		t.Fatalf("the gateway read %d MiB of one request", sent>>20)
	}
	// Socket buffers on both sides hold a few MiB beyond the bound.
	if sent > appproto.MaxRequest+16<<20 {
		t.Fatalf("the gateway read %d MiB of one request before closing it", sent>>20)
	}
}

// 1000 idle connections to the gateway (which needs no key to connect) do
// not lock apps out: apps still start and connect, and the visor's
// descriptors stay bounded.
func TestGatewayIdleFlood(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	n := startNet(t, 2, func(i int, _ []cipher.PubKey) []visor.AppConfig {
		if i == 1 {
			return []visor.AppConfig{{App: "echo", Port: 30, AutoStart: true, Args: []string{}}}
		}
		return []visor.AppConfig{holderAt(31)}
	})
	server := n.Nodes[0].AppServerAddr()
	before := openFDs(t)
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for range 1000 {
		c, err := net.Dial("tcp", server)
		if err != nil {
			t.Fatalf("dial %d: %v", len(idle), err)
		}
		idle = append(idle, c)
	}
	// The test's own ends are 1000 of the descriptors; the gateway holds at
	// most its cap of the others.
	time.Sleep(200 * time.Millisecond)
	if during := openFDs(t) - before - len(idle); during > 128+32 {
		t.Fatalf("the gateway holds %d descriptors for 1000 idle connections", during)
	}
	// An app starts and connects through it during the flood.
	a, _ := impersonate(t, n, 0)
	waitFor(t, "echo runs", func() bool { return appInfo(t, n, 1, "echo").State == "running" })
	ok := 0
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := a.Dial(ctx, n.Nodes[1].PK(), 30)
		cancel()
		if err != nil {
			t.Logf("dial %d during the flood: %v", i, err)
			continue
		}
		msg := fmt.Sprintf("m%d", i)
		c.Write([]byte(msg))
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err == nil && string(got) == msg {
			ok++
		}
		c.Close()
	}
	if ok != 20 {
		t.Fatalf("%d of 20 honest exchanges worked during the flood", ok)
	}
	if _, err := call(t, n, 0, admin.StopApp, admin.AppRequest{Name: "holder"}); err != nil {
		t.Fatal(err)
	}
	if _, err := call(t, n, 0, admin.StartApp, admin.AppRequest{Name: "holder"}); err != nil {
		t.Fatalf("app start during the flood: %v", err)
	}
	// Most idle connections were closed by the gateway (evicted).
	closed := 0
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed < 1000-128 {
		t.Fatalf("only %d of 1000 idle connections were closed", closed)
	}
}

// A route cut on the path (the middle hop loses its next transport) ends an
// app's data socket with a reset, not a clean end of stream.
func TestCutRouteResetsDataSocket(t *testing.T) {
	n := startNet(t, 3, func(i int, _ []cipher.PubKey) []visor.AppConfig {
		return []visor.AppConfig{holderAt(uint16(40 + i))}
	})
	a, _ := impersonate(t, n, 0)
	c, _ := impersonate(t, n, 2)
	l, err := c.Listen(42)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		cc, err := l.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- cc
		io.Copy(cc, &zeros{}) // until it fails
		cc.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := a.Dial(ctx, n.Nodes[2].PK(), 42)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.CopyN(io.Discard, conn, 1<<20); err != nil {
		t.Fatal(err)
	}
	tps, err := call(t, n, 1, admin.ListTransports, admin.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range tps {
		if tp.RemotePK == n.Nodes[2].PK() {
			if _, err := call(t, n, 1, admin.RemoveTransport, admin.RemoveTransportRequest{ID: tp.ID}); err != nil {
				t.Fatal(err)
			}
		}
	}
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.Copy(io.Discard, conn)
	if err == nil {
		t.Fatal("the cut route ended the data socket cleanly")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the cut was never passed on")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// The protocol's edges, as docs/apps.md states them.
func TestGatewayProtocolEdges(t *testing.T) {
	n := startNet(t, 2, func(i int, _ []cipher.PubKey) []visor.AppConfig {
		if i == 1 {
			return []visor.AppConfig{{App: "echo", Port: 30, AutoStart: true, Args: []string{}}}
		}
		return []visor.AppConfig{holderAt(31)}
	})
	server := n.Nodes[0].AppServerAddr()
	_, key := impersonate(t, n, 0)
	var cr appproto.ConnReply
	// A wrong key is answered with an error.
	if err := rawCall(t, server, strings.Repeat("ab", 16)+".Dial", appproto.DialArgs{PK: n.Nodes[1].PK().Hex(), Port: 30}, &cr); err == nil || !strings.Contains(err.Error(), "can't find service") {
		t.Fatalf("wrong key: %v", err)
	}
	// Port 0 is the router's.
	if err := rawCall(t, server, key+".Dial", appproto.DialArgs{PK: n.Nodes[1].PK().Hex(), Port: 0}, &cr); err == nil {
		t.Fatal("dialled port 0")
	}
	// A status over MaxStatus is refused, not cut.
	if err := rawCall(t, server, key+".SetStatus", appproto.StatusArgs{Status: strings.Repeat("s", appproto.MaxStatus+1)}, &appproto.Empty{}); err == nil {
		t.Fatal("an oversized status was taken")
	}
	// A malformed data socket line is answered ERR.
	for _, line := range []string{"SWDATA/1 " + key + "\n", "SWDATA/9 " + key + " 1\n", "SWDATA/1 " + strings.Repeat("x", 300) + "\n"} {
		if got := dataSocketLine(t, server, line); !strings.HasPrefix(got, "ERR") {
			t.Fatalf("%q answered %q", line, got)
		}
	}
	// Over RPC: a read deadline is a timeout field, CloseWrite half-closes.
	waitFor(t, "echo runs", func() bool { return appInfo(t, n, 1, "echo").State == "running" })
	waitFor(t, "dial echo", func() bool {
		return rawCall(t, server, key+".Dial", appproto.DialArgs{PK: n.Nodes[1].PK().Hex(), Port: 30}, &cr) == nil
	})
	if err := rawCall(t, server, key+".SetDeadline", appproto.DeadlineArgs{Conn: cr.Conn, Kind: "read", Deadline: time.Now().Add(50 * time.Millisecond)}, &appproto.Empty{}); err != nil {
		t.Fatal(err)
	}
	var rr appproto.ReadReply
	if err := rawCall(t, server, key+".Read", appproto.ReadArgs{Conn: cr.Conn, N: 10}, &rr); err != nil || !rr.Timeout {
		t.Fatalf("read past its deadline: %v %+v", err, rr)
	}
	rawCall(t, server, key+".SetDeadline", appproto.DeadlineArgs{Conn: cr.Conn, Kind: "read"}, &appproto.Empty{})
	var wr appproto.WriteReply
	if err := rawCall(t, server, key+".Write", appproto.WriteArgs{Conn: cr.Conn, Data: []byte("bye")}, &wr); err != nil {
		t.Fatal(err)
	}
	if err := rawCall(t, server, key+".CloseWrite", appproto.CloseArgs{Conn: cr.Conn}, &appproto.Empty{}); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		rr = appproto.ReadReply{}
		if err := rawCall(t, server, key+".Read", appproto.ReadArgs{Conn: cr.Conn, N: 10}, &rr); err != nil {
			t.Fatal(err)
		}
		got = append(got, rr.Data...)
		if rr.EOF {
			break
		}
	}
	if string(got) != "bye" {
		t.Fatalf("echo after CloseWrite: %q", got)
	}
}

func dataSocketLine(t *testing.T, server, line string) string {
	t.Helper()
	conn, err := net.Dial("tcp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, line)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	return string(b)
}

// More joined sockets than the join socket admits unanswered requests:
// a join's slot is freed once it is answered, so 200 relays live at once.
func TestManyJoinsAtOnce(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the join socket is Linux's")
	}
	n := startNet(t, 2, func(i int, _ []cipher.PubKey) []visor.AppConfig {
		if i == 1 {
			return []visor.AppConfig{{App: "echo", Port: 60, AutoStart: true, Args: []string{}}}
		}
		return []visor.AppConfig{holderAt(61)}
	})
	a, _ := impersonate(t, n, 0)
	waitFor(t, "echo runs", func() bool { return appInfo(t, n, 1, "echo").State == "running" })
	const joins = 200
	var mine []net.Conn
	for i := range joins {
		var rc *sdk.RPCConn
		waitFor(t, "dial the echo app", func() bool {
			var err error
			rc, err = a.DialRPC(context.Background(), n.Nodes[1].PK(), 60)
			return err == nil
		})
		m, theirs := loopback.Pair(t)
		if err := rc.Join(theirs); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
		theirs.Close()
		mine = append(mine, m)
	}
	for i, m := range mine {
		msg := fmt.Sprintf("relay %d", i)
		m.Write([]byte(msg))
		got := make([]byte, len(msg))
		m.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(m, got); err != nil || string(got) != msg {
			t.Fatalf("relay %d of %d live joins: %q %v", i, joins, got, err)
		}
	}
}
