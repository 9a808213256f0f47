package suite

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/svc/httpauth"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func start(t *testing.T, cfg Config) *Suite {
	t.Helper()
	cfg.Host = "127.0.0.1"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("suite: %v", err)
		}
	})
	return s
}

// Slow-body and idle clients from one host (127.0.0.2) against every HTTP
// service: at most its share of connections is held, those are cut off
// after the read timeout, honest clients (127.0.0.1) are served
// throughout, and the services stay up.
func TestSlowAndIdleFloods(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("binds 127.0.0.2 (Linux loopback)")
	}
	const perClient, flood = 16, 200
	s := start(t, Config{Limits: httpauth.ServerLimits{ReadTimeout: time.Second, PerClient: perClient}})
	for _, tc := range []struct {
		n    Name
		idle bool
	}{{DmsgDiscovery, false}, {TransportDiscovery, false}, {RouteFinder, false}, {AddressResolver, false},
		{DmsgDiscovery, true}, {TransportDiscovery, true}, {RouteFinder, true}, {AddressResolver, true}} {
		n := tc.n
		name := string(n) + "/slow-body"
		if tc.idle {
			name = string(n) + "/idle"
		}
		t.Run(name, func(t *testing.T) {
			addr := s.Addr(n)
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: loopback.OtherHost}}
			var slow []net.Conn
			defer func() {
				for _, c := range slow {
					c.Close()
				}
			}()
			for range flood {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				if !tc.idle {
					fmt.Fprintf(c, "POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
				}
				slow = append(slow, c)
			}
			// Past the per-client cap they are closed as soon as accepted.
			isClosed := make([]bool, len(slow))
			closed := 0
			for wait := time.Now().Add(5 * time.Second); closed < flood-perClient && time.Now().Before(wait); {
				for i, c := range slow {
					if isClosed[i] {
						continue
					}
					c.SetReadDeadline(time.Now().Add(time.Millisecond))
					if _, err := c.Read(make([]byte, 1)); err != nil && !os.IsTimeout(err) {
						isClosed[i] = true
						closed++
					}
				}
			}
			if closed < flood-perClient {
				t.Fatalf("%d of %d connections from one host closed at once, want %d", closed, flood, flood-perClient)
			}
			// Honest requests during the flood, while the slow clients
			// trickle a byte each.
			ok := 0
			for i := range 20 {
				for _, c := range slow {
					if !tc.idle {
						c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
						c.Write([]byte{'a'})
					}
				}
				resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/v1/health")
				if err != nil {
					t.Logf("honest request %d: %v", i, err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok++
			}
			if ok != 20 {
				t.Fatalf("%d of 20 honest requests answered during the flood", ok)
			}
			// Every slow connection ends: past the per-client cap at
			// once, the others at the read timeout.
			deadline := time.Now().Add(10 * time.Second)
			for i, c := range slow {
				c.SetReadDeadline(deadline)
				if _, err := io.Copy(io.Discard, c); err != nil && time.Now().After(deadline) {
					t.Fatalf("slow connection %d still open after the read timeout", i)
				}
			}
		})
	}
}

// A port already taken fails New with the service and address named (it
// once panicked closing the suite it had not returned).
func TestNewWithATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	_, err = New(Config{Host: "127.0.0.1", Ports: map[Name]int{RouteFinder: port}})
	if err == nil || !strings.Contains(err.Error(), string(RouteFinder)) || !strings.Contains(err.Error(), fmt.Sprint(port)) {
		t.Fatalf("err = %v", err)
	}
}
