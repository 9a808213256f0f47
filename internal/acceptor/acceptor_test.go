package acceptor

import (
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/loopback"
)

func TestSource(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:5", "127.0.0.1"},
		{"[::ffff:10.0.0.1]:5", "10.0.0.1"},
		{"[2001:db8:1:2:3:4:5:6]:80", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:81", "2001:db8:1:2::/64"},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := Source(a); got != tc.want {
			t.Errorf("Source(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got := Source(&net.UnixAddr{Name: "/x", Net: "unix"}); got != "" {
		t.Errorf("unix source %q", got)
	}
}

func TestAdmission(t *testing.T) {
	ad := &Admission{Limits: Limits{PerSource: 2, Total: 3}}
	a := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 1}
	b := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2), Port: 1}
	r1, ok1 := ad.Admit(a)
	_, ok2 := ad.Admit(a)
	_, ok3 := ad.Admit(a)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("per source: %v %v %v", ok1, ok2, ok3)
	}
	if _, ok := ad.Admit(b); !ok {
		t.Fatal("another source refused")
	}
	if _, ok := ad.Admit(b); ok {
		t.Fatal("past the total admitted")
	}
	r1()
	r1() // once only
	if ad.Held() != 2 {
		t.Fatalf("held %d after one release (twice), want 2", ad.Held())
	}
	if _, ok := ad.Admit(a); !ok {
		t.Fatal("a released slot is not reusable")
	}
}

// An honest client from 127.0.0.1 is served while another loopback source
// (127.0.0.2) holds every connection it is allowed.
func TestServePerSource(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("binds 127.0.0.2 (Linux loopback)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, ln, Limits{PerSource: 4, Total: 64}, func(_ context.Context, c net.Conn, done func()) {
			defer c.Close()
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			c.Write(b[:])
			io.Copy(io.Discard, c)
		})
	}()
	idle := loopback.Idle(t, ln.Addr().String(), 50)
	kept := 0
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && os.IsTimeout(err) {
			kept++ // still open: admitted
		}
	}
	if kept != 4 {
		t.Fatalf("%d connections of one source kept open, want 4", kept)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte{'x'})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("honest client not served during the flood: %v", err)
	}
	c.Close()
	for _, c := range idle {
		c.Close()
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
