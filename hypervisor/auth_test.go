package hypervisor_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
)

// Every route but ping, login and setup answers 401 without a session
// (the routes come from the hypervisor itself, so a new one is covered);
// with a session, a mutating request without the CSRF token is refused.
func TestEveryRouteNeedsASession(t *testing.T) {
	_, hsk := cipher.GenerateKeyPair()
	h := startHV(t, nil, t.TempDir(), hsk)
	pk, _ := cipher.GenerateKeyPair()
	public := map[string]bool{"GET /api/ping": true, "POST /api/login": true, "POST /api/setup": true}
	var mutating []string
	check := func(pattern string, want int) {
		t.Helper()
		method, path, ok := strings.Cut(pattern, " ")
		if !ok { // a pattern for every method
			method, path = "POST", pattern+"x"
		}
		path = strings.ReplaceAll(path, "{pk}", pk.Hex())
		if code, body := h.do(method, path, map[string]string{}); code != want {
			t.Errorf("%s %s: %d %s, want %d", method, path, code, body, want)
		}
	}
	n := 0
	for _, p := range h.Patterns() {
		if !strings.HasPrefix(strings.TrimLeft(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ "), "/api/") || public[p] {
			continue
		}
		n++
		check(p, http.StatusUnauthorized)
		if !strings.HasPrefix(p, "GET ") {
			mutating = append(mutating, p)
		}
	}
	if n < 20 {
		t.Fatalf("only %d routes found: %v", n, h.Patterns())
	}
	h.setup()
	csrf := h.csrf
	h.csrf = ""
	for _, p := range mutating {
		check(p, http.StatusForbidden)
	}
	h.csrf = csrf
	if code, body := h.do("POST", "/api/logout", nil); code != 200 {
		t.Fatalf("logout: %d %s", code, body)
	}
	if code, _ := h.do("GET", "/api/visors", nil); code != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", code)
	}
}

// The setup code works once; wrong passwords are throttled with growing
// waits (even the right one must wait then); the password survives a
// restart, and the database file has mode 0600.
func TestLoginAndSetup(t *testing.T) {
	_, hsk := cipher.GenerateKeyPair()
	dir := t.TempDir()
	h := startHV(t, nil, dir, hsk)
	var ping hypervisor.Ping
	h.must("GET", "/api/ping", nil, &ping)
	if ping.PasswordSet || h.SetupCode() == "" {
		t.Fatalf("a new hypervisor: %+v, code %q", ping, h.SetupCode())
	}
	code := h.SetupCode()
	if c, _ := h.do("POST", "/api/login", map[string]string{"password": testPassword}); c != http.StatusConflict {
		t.Fatalf("login before setup: %d", c)
	}
	if c, _ := h.do("POST", "/api/setup", map[string]string{"code": "AAAA-BBBB-CCCC", "password": testPassword}); c != http.StatusUnauthorized {
		t.Fatalf("a wrong setup code: %d", c)
	}
	if c, _ := h.do("POST", "/api/setup", map[string]string{"code": code, "password": "short"}); c != http.StatusBadRequest {
		t.Fatalf("a short password: %d", c)
	}
	// Many setups at once with the right code: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan int, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			other := *h
			other.hc = &http.Client{}
			c, _ := other.do("POST", "/api/setup", map[string]string{"code": code, "password": testPassword})
			wins <- c
		}()
	}
	wg.Wait()
	close(wins)
	ok := 0
	for c := range wins {
		if c == 200 {
			ok++
		}
	}
	if ok != 1 {
		t.Fatalf("%d setups succeeded with one code", ok)
	}
	if c, _ := h.do("POST", "/api/setup", map[string]string{"code": code, "password": "another password"}); c == 200 {
		t.Fatal("the setup code worked twice")
	}
	h.must("GET", "/api/ping", nil, &ping)
	if !ping.PasswordSet || h.SetupCode() != "" {
		t.Fatalf("after setup: %+v", ping)
	}
	// Throttling: three free failures, then waits.
	for i := range 4 {
		if c, _ := h.do("POST", "/api/login", map[string]string{"password": "wrong password"}); c != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i, c)
		}
	}
	c, body := h.do("POST", "/api/login", map[string]string{"password": testPassword})
	if c != http.StatusTooManyRequests || !strings.Contains(string(body), "try again in") {
		t.Fatalf("the right password right after four wrong ones: %d %s", c, body)
	}
	fi, err := os.Stat(filepath.Join(dir, "hv.db"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database mode: %v %v", fi.Mode(), err)
	}
}

// `skywire hypervisor passwd`'s work: a password set from the shell logs
// in, and ends the sessions there were.
func TestSetPassword(t *testing.T) {
	_, hsk := cipher.GenerateKeyPair()
	dir := t.TempDir()
	cfg := hypervisor.DefaultConfig(hsk)
	cfg.DBPath = filepath.Join(dir, "hv.db")
	if err := hypervisor.SetPassword(&cfg, "", "short"); err == nil {
		t.Fatal("a short password was taken")
	}
	if err := hypervisor.SetPassword(&cfg, "", testPassword); err != nil {
		t.Fatal(err)
	}
	h := startHV(t, nil, dir, hsk)
	if h.SetupCode() != "" {
		t.Fatal("a setup code although a password is set")
	}
	var si hypervisor.SessionInfo
	h.must("POST", "/api/login", map[string]string{"password": testPassword}, &si)
	if si.CSRFToken == "" {
		t.Fatal("no CSRF token")
	}
	if err := hypervisor.SetPassword(&cfg, "", "another password"); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Fatalf("passwd while the hypervisor runs: %v", err)
	}
	var audit []hypervisor.AuditEntry
	h.csrf = si.CSRFToken
	h.must("GET", "/api/audit", nil, &audit)
	js, _ := json.Marshal(audit)
	if !strings.Contains(string(js), "password set from the shell") || !strings.Contains(string(js), `"action":"login"`) {
		t.Fatalf("audit: %s", js)
	}
}
