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
	"testing"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
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
