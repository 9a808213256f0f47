package skysocks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfleet/skywire/cipher"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// twinNet is the in-memory twin of the app network: a server's "route" is
// a loopback TCP connection to the listener registered under its key.
type twinNet struct {
	mu    sync.Mutex
	addrs map[cipher.PubKey]string
}

func (n *twinNet) Dial(ctx context.Context, pk cipher.PubKey, port uint16) (net.Conn, error) {
	n.mu.Lock()
	addr, ok := n.addrs[pk]
	n.mu.Unlock()
	if !ok || port != ServerPort {
		return nil, fmt.Errorf("no route to %s:%d", pk.Short(), port)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

func (n *twinNet) set(pk cipher.PubKey, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if addr == "" {
		delete(n.addrs, pk)
		return
	}
	n.addrs[pk] = addr
}

// proxy runs a Server (serverCfg) reached through the twin network and a
// Client (clientCfg, Server filled in) on a loopback port; it returns the
// client's SOCKS5 address and the client.
func proxy(t *testing.T, serverCfg ServerConfig, clientCfg ClientConfig) (string, *Client, *twinNet, func(on bool)) {
	t.Helper()
	pk, _ := cipher.GenerateKeyPair()
	n := &twinNet{addrs: map[cipher.PubKey]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.set(pk, sl.Addr().String())
	wg.Add(1)
	go func() {
		defer wg.Done()
		NewServer(serverCfg).Serve(ctx, sl)
	}()

	clientCfg.Server = pk
	c, err := NewClient(clientCfg, n)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.Serve(ctx, cl)
	}()
	reachable := func(on bool) {
		if on {
			n.set(pk, sl.Addr().String())
		} else {
			n.set(pk, "")
		}
	}
	return cl.Addr().String(), c, n, reachable
}

func httpVia(socks string) *http.Client {
	u := &url.URL{Scheme: "socks5h", Host: socks}
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), DisableKeepAlives: true}, Timeout: 20 * time.Second}
}

func TestProxiesHTTP(t *testing.T) {
	body := strings.Repeat("skywire ", 1<<17)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	defer web.Close()
	socks, c, _, _ := proxy(t, ServerConfig{AllowLocal: true}, ClientConfig{})
	// Many at once: each gets its own route.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := httpVia(socks).Get(web.URL)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err == nil && string(got) != body {
				err = errors.New("body differs")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waitStatus(t, c, "connected to ")
}

func waitStatus(t *testing.T, c *Client, prefix string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasPrefix(c.Status(), prefix) {
		if time.Now().After(deadline) {
			t.Fatalf("status %q, want %q…", c.Status(), prefix)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// By default the proxy does not open its own machine to the network.
func TestRefusesLocalTargets(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer web.Close()
	socks, _, _, _ := proxy(t, ServerConfig{}, ClientConfig{})
	if _, err := httpVia(socks).Get(web.URL); err == nil {
		t.Fatal("reached a loopback server through a proxy without AllowLocal")
	}
	for _, ip := range []string{"127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "169.254.1.1", "100.64.0.1", "::1", "fd00::1", "fe80::1", "0.0.0.0", "::ffff:127.0.0.1"} {
		if err := refuseLocal(context.Background(), "tcp", net.JoinHostPort(ip, "80"), nil); !errors.Is(err, ErrLocalTarget) {
			t.Errorf("%s: %v", ip, err)
		}
	}
	if err := refuseLocal(context.Background(), "tcp", "192.0.2.1:80", nil); err != nil {
		t.Errorf("a public address was refused: %v", err)
	}
}

func TestPasscode(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer web.Close()
	socks, _, _, _ := proxy(t, ServerConfig{AllowLocal: true, Passcode: "open sesame"}, ClientConfig{Passcode: "open sesame"})
	resp, err := httpVia(socks).Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	socks, c, _, _ := proxy(t, ServerConfig{AllowLocal: true, Passcode: "open sesame"}, ClientConfig{Passcode: "guess"})
	if _, err := httpVia(socks).Get(web.URL); err == nil {
		t.Fatal("a wrong passcode got through")
	}
	waitStatus(t, c, c.cfg.Server.Hex()+" refused the passcode")
}

// The status says "connected" only once a request through the server was
// answered with the passcode: a refused passcode shows at once, with no
// request made, and "connected" never shows before it; with the right one,
// and with a server that refuses local targets, it is connected.
func TestStatusTellsTheTruth(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := func(s string) {
		mu.Lock()
		seen = append(seen, s)
		mu.Unlock()
	}
	_, c, _, _ := proxy(t, ServerConfig{Passcode: "open sesame"}, ClientConfig{Passcode: "guess", Status: record})
	waitStatus(t, c, c.cfg.Server.Hex()+" refused the passcode")
	mu.Lock()
	for _, s := range seen {
		if strings.HasPrefix(s, "connected") {
			t.Errorf("said %q with a wrong passcode", s)
		}
	}
	mu.Unlock()
	_, c, _, _ = proxy(t, ServerConfig{Passcode: "open sesame"}, ClientConfig{Passcode: "open sesame"})
	waitStatus(t, c, "connected to ")
	_, c, _, _ = proxy(t, ServerConfig{Passcode: "open sesame"}, ClientConfig{})
	waitStatus(t, c, c.cfg.Server.Hex()+" refused the passcode")
}

// A request may end its direction (half-close) and still read the answer.
func TestHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c) // until the client's half-close
		fmt.Fprintf(c, "got %d bytes", len(req))
	}()
	socks, _, _, _ := proxy(t, ServerConfig{AllowLocal: true}, ClientConfig{})
	c, err := net.Dial("tcp", socks)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p := 0
	fmt.Sscan(port, &p)
	// greeting, CONNECT 127.0.0.1:port, then the request, then half-close.
	c.Write([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, byte(p >> 8), byte(p)})
	c.Write([]byte(strings.Repeat("r", 5000)))
	c.(*net.TCPConn).CloseWrite()
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 12 || !strings.HasSuffix(string(all), "got 5000 bytes") {
		t.Fatalf("answer % x", all)
	}
}

// When the server cannot be reached the client says so, answers SOCKS
// requests at once with an error, and reconnects when it comes back.
func TestReconnects(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer web.Close()
	socks, c, _, reachable := proxy(t, ServerConfig{AllowLocal: true}, ClientConfig{})
	waitStatus(t, c, "connected to ")
	reachable(false)
	if _, err := httpVia(socks).Get(web.URL); err == nil {
		t.Fatal("got through to an unreachable server")
	}
	waitStatus(t, c, "cannot reach ")
	reachable(true)
	waitStatus(t, c, "connected to ")
	resp, err := httpVia(socks).Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestNeedsAServer(t *testing.T) {
	if _, err := NewClient(ClientConfig{}, &twinNet{}); err == nil {
		t.Fatal("a client without a server")
	}
}

// httpProxy serves c's HTTP proxy on a loopback port until the test ends.
func httpProxy(t *testing.T, c *Client) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.ServeHTTP(ctx, l)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l.Addr().String()
}

// The HTTP proxy forwards plain requests and tunnels CONNECT (HTTPS)
// through the server, byte-exact, many at once; it refuses what is not a
// proxy request, and says when the server refused the passcode.
func TestHTTPProxy(t *testing.T) {
	body := strings.Repeat("skywire ", 1<<17)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "the proxy told who asked", http.StatusTeapot)
			return
		}
		io.WriteString(w, body)
	})
	web := httptest.NewServer(handler)
	defer web.Close()
	secure := httptest.NewTLSServer(handler)
	defer secure.Close()
	_, c, _, _ := proxy(t, ServerConfig{AllowLocal: true}, ClientConfig{})
	addr := httpProxy(t, c)
	proxyURL, _ := url.Parse("http://" + addr)
	plain := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}, Timeout: 20 * time.Second}
	tlsClient := secure.Client()
	tlsClient.Transport.(*http.Transport).Proxy = http.ProxyURL(proxyURL)
	tlsClient.Timeout = 20 * time.Second
	get := func(hc *http.Client, u string) error {
		resp, err := hc.Get(u)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err == nil && (resp.StatusCode != http.StatusOK || string(got) != body) {
			err = fmt.Errorf("%s: %d, %d bytes", u, resp.StatusCode, len(got))
		}
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				errs <- get(plain, web.URL+"/plain")
			} else {
				errs <- get(tlsClient, secure.URL+"/over-connect")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Not a proxy request.
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a request for the proxy itself: %d", resp.StatusCode)
	}
	// A refused passcode is a 403 that says so.
	_, wrong, _, _ := proxy(t, ServerConfig{AllowLocal: true, Passcode: "open sesame"}, ClientConfig{Passcode: "guess"})
	resp, err = (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: httpProxy(t, wrong)})}}).Get(web.URL)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(msg), "passcode") {
		t.Fatalf("a refused passcode: %d %s", resp.StatusCode, msg)
	}
}
