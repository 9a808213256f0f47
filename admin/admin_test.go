package admin

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/internal/testtool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type echoReq struct {
	Text string `json:"text"`
}
type echoResp struct {
	Upper string `json:"upper"`
}

var (
	opEcho = Op[echoReq, echoResp]{Method: "POST", Path: "/v1/test/echo"}
	opFail = Op[Empty, Empty]{Method: "GET", Path: "/v1/test/fail"}
	opOops = Op[Empty, Empty]{Method: "GET", Path: "/v1/test/oops"}
)

// serve starts a server with the test operations on addr and returns a
// client for it; everything stops at the end of the test.
func serve(t *testing.T, addr, token string) *Client {
	t.Helper()
	s := NewServer(zap.NewNop())
	Handle(s, opEcho, func(_ context.Context, r echoReq) (echoResp, error) {
		return echoResp{Upper: strings.ToUpper(r.Text)}, nil
	})
	Handle(s, opFail, func(context.Context, Empty) (Empty, error) {
		return Empty{}, Errorf(CodeNotFound, "transport 7 not found")
	})
	Handle(s, opOops, func(context.Context, Empty) (Empty, error) {
		return Empty{}, errors.New("disk on fire")
	})
	ln, err := Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	auth := Open
	if token != "" {
		auth = Token(token)
	}
	go func() { done <- s.Serve(ctx, ln, auth, time.Second) }()
	c, err := NewClient(addr, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return c
}

func socketPath(t *testing.T) string {
	// t.TempDir can exceed the unix socket path limit; keep it short.
	dir, err := os.MkdirTemp("", "adm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "cli.sock")
}

func tcpAddr(t *testing.T) string { t.Helper(); return testtool.FreeAddr(t) }

func exercise(t *testing.T, c *Client) {
	ctx := context.Background()
	got, err := Call(ctx, c, opEcho, echoReq{Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Upper != "HI" {
		t.Fatalf("echo = %q", got.Upper)
	}
	_, err = Call(ctx, c, opFail, Empty{})
	if !IsCode(err, CodeNotFound) || err.Error() != "transport 7 not found" {
		t.Fatalf("handler error: %v", err)
	}
	_, err = Call(ctx, c, opOops, Empty{})
	if !IsCode(err, CodeInternal) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("plain error: %v", err)
	}
	_, err = Call(ctx, c, Op[Empty, Empty]{Method: "GET", Path: "/v1/nope"}, Empty{})
	if !IsCode(err, CodeNotFound) || !strings.Contains(err.Error(), "no operation GET /v1/nope") {
		t.Fatalf("unknown op: %v", err)
	}
	// A body with a field the operation does not have is refused.
	type wrong struct {
		Txt string `json:"txt"`
	}
	_, err = Call(ctx, c, Op[wrong, echoResp]{Method: "POST", Path: "/v1/test/echo"}, wrong{Txt: "x"})
	if !IsCode(err, CodeBadRequest) || !strings.Contains(err.Error(), `unknown field "txt"`) {
		t.Fatalf("bad body: %v", err)
	}
}

func TestUnixSocket(t *testing.T) {
	path := socketPath(t)
	c := serve(t, path, "")
	exercise(t, c)
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
		}
	}
}

func TestTCPNeedsToken(t *testing.T) {
	addr := tcpAddr(t)
	c := serve(t, addr, "s3cret")
	exercise(t, c)
	for _, tok := range []string{"", "wrong", "s3cret2"} {
		bad, _ := NewClient(addr, tok)
		_, err := Call(context.Background(), bad, opEcho, echoReq{Text: "x"})
		if !IsCode(err, CodeUnauthorized) {
			t.Fatalf("token %q: err = %v, want unauthorized", tok, err)
		}
		bad.Close()
	}
	// Raw HTTP without a token, as a browser or curl would send it.
	resp, err := http.Get("http://" + addr + "/v1/test/fail")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}

func TestUnreachable(t *testing.T) {
	c, err := NewClient(filepath.Join(t.TempDir(), "none.sock"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = Call(context.Background(), c, opEcho, echoReq{})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("err = %v, want ErrUnreachable naming the socket", err)
	}
	if strings.Contains(err.Error(), "http://") {
		t.Fatalf("error names an internal URL: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("unix sockets behave differently on Windows")
	}
	path := socketPath(t)
	// A crashed visor leaves its socket file behind.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal("stale socket not left behind")
	}
	c := serve(t, path, "")
	exercise(t, c)
}

func TestLiveSocketRefused(t *testing.T) {
	path := socketPath(t)
	serve(t, path, "")
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second listener: err = %v", err)
	}
}

func TestNonSocketFileRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no socket file mode on Windows")
	}
	path := socketPath(t)
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "keep me" {
		t.Fatal("the file in the way was modified")
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct{ in, network, address string }{
		{"/run/skywire/cli.sock", "unix", "/run/skywire/cli.sock"},
		{"local/cli.sock", "unix", "local/cli.sock"},
		{"cli.sock", "unix", "cli.sock"},
		{"unix:cli", "unix", "cli"},
		{`C:\skywire\cli.sock`, "unix", `C:\skywire\cli.sock`},
		{"localhost:3435", "tcp", "localhost:3435"},
		{"127.0.0.1:3435", "tcp", "127.0.0.1:3435"},
		{"[::1]:3435", "tcp", "[::1]:3435"},
	}
	for _, tt := range tests {
		n, a, err := ParseAddr(tt.in)
		if err != nil || n != tt.network || a != tt.address {
			t.Errorf("ParseAddr(%q) = %q %q %v", tt.in, n, a, err)
		}
	}
	for _, bad := range []string{"", "localhost", "3435"} {
		if _, _, err := ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) accepted", bad)
		}
	}
}
