//go:build linux

package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// skysocks-client's HTTP proxy, as a user runs it: `cli proxy start --http`,
// then curl -x for a plain request and for HTTPS (CONNECT) to local
// servers, byte-exact; `proxy status` shows it.
func TestHTTPProxyWithCurl(t *testing.T) {
	needCurl(t)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) })
	web := httptest.NewServer(handler)
	defer web.Close()
	secure := httptest.NewTLSServer(handler)
	defer secure.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	n := startNetwork(t)
	vs := startLineWith(t, n, []string{"stcp"}, proxyApps, nil)
	a, b := vs[0], vs[1]
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	if r := sw(t, "skywire", "cli", "proxy", "start", b.pk, "--http", httpAddr, "--addr", fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0]), "--rpc", a.sock); r.code != 0 || !strings.Contains(r.stdout, "curl -x http://"+httpAddr) {
		t.Fatalf("proxy start: %d %s %s", r.code, r.stdout, r.stderr)
	}
	want := sha256.Sum256(body)
	fetch := func(args ...string) error {
		out, err := exec.Command("curl", append([]string{"-sS", "--fail", "-m", "20", "-x", "http://" + httpAddr}, args...)...).Output()
		if err != nil {
			return err
		}
		if sha256.Sum256(out) != want {
			return fmt.Errorf("%d bytes, not the body", len(out))
		}
		return nil
	}
	until(t, "a plain request through the HTTP proxy", func() bool { return fetch(web.URL+"/") == nil })
	if err := fetch("--cacert", ca, secure.URL+"/"); err != nil {
		t.Fatalf("HTTPS through CONNECT: %v", err)
	}
	if r := sw(t, "skywire", "cli", "proxy", "status", "--rpc", a.sock); r.code != 0 || !strings.Contains(r.stdout, httpAddr) || !strings.Contains(r.stdout, "connected to") {
		t.Fatalf("proxy status: %s %s", r.stdout, r.stderr)
	}
}
