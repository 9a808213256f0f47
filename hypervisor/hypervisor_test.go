package hypervisor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
	"github.com/skyfleet/skywire/internal/testnet"
	"github.com/skyfleet/skywire/svc/suite"
)

const testPassword = "correct horse battery"

// hv is a running hypervisor and a browser-like client of it.
type hv struct {
	*hypervisor.Hypervisor
	t    *testing.T
	url  string
	hc   *http.Client
	csrf string
}

// shortDir is a temporary directory with a short path (unix sockets).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startNet runs n visors; those for which trusts(i) list hsk's key.
func startNet(t *testing.T, dir string, visors int, hpk cipher.PubKey, trusts func(i int) bool, unlinked bool) *testnet.Network {
	t.Helper()
	n, err := testnet.Start(context.Background(), testnet.Config{Dir: dir, Visors: visors, Unlinked: unlinked,
		Hypervisors: func(i int, _ []cipher.PubKey) []cipher.PubKey {
			if trusts(i) {
				return []cipher.PubKey{hpk}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// startHV runs a hypervisor of key hsk on n's dmsg.
func startHV(t *testing.T, n *testnet.Network, dir string, hsk cipher.SecKey) *hv {
	t.Helper()
	cfg := hypervisor.DefaultConfig(hsk)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DBPath = filepath.Join(dir, "hv.db")
	if n != nil {
		cfg.Dmsg.Discovery = n.Suite.URL(suite.DmsgDiscovery)
	}
	return runHV(t, &cfg)
}

// runHV runs a hypervisor of config cfg until the test ends.
func runHV(t *testing.T, cfg *hypervisor.Config) *hv {
	t.Helper()
	return runHVWith(t, cfg, hypervisor.Options{})
}

// runHVWith is runHV with options.
func runHVWith(t *testing.T, cfg *hypervisor.Config, opts hypervisor.Options) *hv {
	t.Helper()
	h, err := hypervisor.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	jar, _ := cookiejar.New(nil)
	return &hv{Hypervisor: h, t: t, url: h.URL(), hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// do sends a request (the CSRF token on all but GET) and returns the
// status and body.
func (h *hv) do(method, path string, body any) (int, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.url+path, rd)
	if method != http.MethodGet && h.csrf != "" {
		req.Header.Set("X-CSRF-Token", h.csrf)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// must is do, failing the test on anything but 200.
func (h *hv) must(method, path string, body any, out any) {
	h.t.Helper()
	code, data := h.do(method, path, body)
	if code != http.StatusOK {
		h.t.Fatalf("%s %s: %d %s", method, path, code, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

// setup sets the first password with the setup code, logging in.
func (h *hv) setup() {
	h.t.Helper()
	var si hypervisor.SessionInfo
	h.must("POST", "/api/setup", map[string]string{"code": h.SetupCode(), "password": testPassword}, &si)
	h.csrf = si.CSRFToken
}

// visors is GET /api/visors by key.
func (h *hv) visors() map[cipher.PubKey]hypervisor.VisorState {
	h.t.Helper()
	var vs []hypervisor.VisorState
	h.must("GET", "/api/visors", nil, &vs)
	out := map[cipher.PubKey]hypervisor.VisorState{}
	for _, v := range vs {
		out[v.PK] = v
	}
	return out
}

func (h *hv) waitState(pk cipher.PubKey, state string) hypervisor.VisorState {
	h.t.Helper()
	var st hypervisor.VisorState
	waitFor(h.t, pk.Short()+" "+state, func() bool {
		st = h.visors()[pk]
		return st.State == state
	})
	return st
}

// A hypervisor and three visors linked over dmsg: each is listed online
// with its info, transports and apps, and its admin API answers through
// /api/visors/{pk}; a visor that does not list the hypervisor's key is not
// reachable; a stopped visor shows offline and comes back by itself.
func TestManagesVisors(t *testing.T) {
	hpk, hsk := cipher.GenerateKeyPair()
	dir := shortDir(t)
	n := startNet(t, dir, 4, hpk, func(i int) bool { return i < 3 }, false)
	h := startHV(t, n, dir, hsk)
	h.setup()
	for i := range 3 {
		st := h.waitState(n.Nodes[i].PK(), hypervisor.StateOnline)
		if st.Info == nil || st.Info.PK != n.Nodes[i].PK() || st.Info.Version == "" {
			t.Fatalf("visor %d: info %+v", i, st.Info)
		}
	}
	// The line a → b → c → d: b has transports to a and c.
	b := n.Nodes[1].PK()
	waitFor(t, "b's two transports listed", func() bool { return len(h.visors()[b].Transports) == 2 })
	var tps []admin.TransportInfo
	h.must("GET", "/api/visors/"+b.Hex()+"/v1/transports", nil, &tps)
	if len(tps) != 2 {
		t.Fatalf("b's transports through the hypervisor: %+v", tps)
	}
	unlisted := n.Nodes[3].PK()
	if code, body := h.do("GET", "/api/visors/"+unlisted.Hex()+"/v1/info", nil); code != http.StatusNotFound {
		t.Fatalf("the visor that does not trust the hypervisor: %d %s", code, body)
	}
	if _, ok := h.visors()[unlisted]; ok {
		t.Fatal("the visor that does not trust the hypervisor is listed")
	}
	// A mutating call through the hypervisor is audited.
	var tp admin.TransportInfo
	h.must("POST", "/api/visors/"+n.Nodes[0].PK().Hex()+"/v1/transports", admin.AddTransportRequest{PK: n.Nodes[2].PK(), Type: "dmsg"}, &tp)
	var audit []hypervisor.AuditEntry
	h.must("GET", "/api/audit", nil, &audit)
	if len(audit) == 0 || audit[0].Action != "POST /v1/transports" || audit[0].Visor != n.Nodes[0].PK().Hex() || audit[0].Status != 200 {
		t.Fatalf("audit log: %+v", audit)
	}
	// A label is stored and shown.
	h.must("PUT", "/api/labels/"+b.Hex(), map[string]string{"label": "bee"}, nil)
	if h.visors()[b].Label != "bee" {
		t.Fatal("label not shown")
	}

	n.Stop(2)
	c := n.Nodes[2].PK()
	st := h.waitState(c, hypervisor.StateOffline)
	if st.LastSeen.IsZero() || st.Info == nil {
		t.Fatalf("an offline visor keeps its last known state: %+v", st)
	}
	if code, body := h.do("GET", "/api/visors/"+c.Hex()+"/v1/info", nil); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "offline") {
		t.Fatalf("calling an offline visor: %d %s", code, body)
	}
	if err := n.Restart(2); err != nil {
		t.Fatal(err)
	}
	h.waitState(c, hypervisor.StateOnline)
}

// Without dmsg, a visor that lists the hypervisor with an address links
// directly (TCP + Noise XK) and is managed as over dmsg; one that lists the
// address with another key fails the handshake and never links.
func TestDirectLink(t *testing.T) {
	hpk, hsk := cipher.GenerateKeyPair()
	dir := shortDir(t)
	n := startNet(t, dir, 2, hpk, func(int) bool { return false }, true)
	cfg := hypervisor.DefaultConfig(hsk)
	cfg.HTTPAddr, cfg.LinkAddr, cfg.DBPath = "127.0.0.1:0", "127.0.0.1:0", filepath.Join(dir, "hv.db")
	h := runHV(t, &cfg)
	h.setup()
	other, _ := cipher.GenerateKeyPair()
	for i, key := range []cipher.PubKey{hpk, other} {
		if err := n.SetHypervisors(i, testnet.Hypervisor{PK: key, Address: h.LinkAddr()}); err != nil {
			t.Fatal(err)
		}
	}
	pk := n.Nodes[0].PK()
	h.waitState(pk, hypervisor.StateOnline)
	var info admin.Info
	h.must("GET", "/api/visors/"+pk.Hex()+"/v1/info", nil, &info)
	if info.PK != pk {
		t.Fatalf("info over the direct link: %+v", info)
	}
	if _, ok := h.visors()[n.Nodes[1].PK()]; ok {
		t.Fatal("a visor that named another key at the address linked")
	}
}

// What many users do at once: logins, event streams and calls through to
// the visors, all at the same time; each gets its answer, and a change
// reaches every stream.
func TestConcurrentUse(t *testing.T) {
	hpk, hsk := cipher.GenerateKeyPair()
	dir := shortDir(t)
	n := startNet(t, dir, 3, hpk, func(int) bool { return true }, false)
	h := startHV(t, n, dir, hsk)
	h.setup()
	for i := range 3 {
		h.waitState(n.Nodes[i].PK(), hypervisor.StateOnline)
	}
	const users = 12
	var wg sync.WaitGroup
	errs := make(chan error, users*8)
	streams := make(chan *bufio.Reader, users)
	for u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jar, _ := cookiejar.New(nil)
			c := &hv{t: t, url: h.url, hc: &http.Client{Jar: jar, Timeout: 60 * time.Second}}
			body, _ := json.Marshal(map[string]string{"password": testPassword})
			resp, err := c.hc.Post(h.url+"/api/login", "application/json", bytes.NewReader(body))
			if err != nil || resp.StatusCode != 200 {
				errs <- fmt.Errorf("user %d: login: %v %v", u, err, resp)
				return
			}
			resp.Body.Close()
			ev, err := c.hc.Get(h.url + "/api/events")
			if err != nil || ev.StatusCode != 200 {
				errs <- fmt.Errorf("user %d: events: %v", u, err)
				return
			}
			t.Cleanup(func() { ev.Body.Close() })
			streams <- bufio.NewReader(ev.Body)
			for i := range 3 {
				pk := n.Nodes[(u+i)%3].PK()
				resp, err := c.hc.Get(h.url + "/api/visors/" + pk.Hex() + "/v1/transports")
				if err != nil {
					errs <- fmt.Errorf("user %d: transports of %s: %v", u, pk.Short(), err)
					continue
				}
				var tps []admin.TransportInfo
				if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tps) != nil || len(tps) == 0 {
					errs <- fmt.Errorf("user %d: transports of %s: %d %v", u, pk.Short(), resp.StatusCode, tps)
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	close(streams)
	h.must("PUT", "/api/labels/"+n.Nodes[1].PK().Hex(), map[string]string{"label": "seen by all"}, nil)
	for r := range streams {
		waitLine(t, r, `"label":"seen by all"`)
	}
}

// waitLine reads an event stream until a line holds want.
func waitLine(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				done <- err
				return
			}
			if strings.Contains(line, want) {
				done <- nil
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the event stream ended before %s: %v", want, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no event with %s", want)
	}
}

// A visor whose event stream ends cleanly (as when its link is replaced)
// is read again; the hypervisor goes on (a nil error once took it down).
func TestStreamEndsCleanly(t *testing.T) {
	pk, _ := cipher.GenerateKeyPair()
	srv := admin.NewServer(nil)
	admin.Handle(srv, admin.GetInfo, func(context.Context, admin.Empty) (admin.Info, error) {
		return admin.Info{PK: pk, Version: "test"}, nil
	})
	ends := make(chan struct{}, 100)
	admin.HandleStream(srv, admin.Events, func(context.Context, admin.Empty, func(admin.Event) error) error {
		ends <- struct{}{}
		return nil
	})
	pipe := admin.NewPipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, pipe, admin.Open, time.Second) }()
	defer func() { cancel(); <-served }()

	_, hsk := cipher.GenerateKeyPair()
	cfg := hypervisor.DefaultConfig(hsk)
	cfg.HTTPAddr, cfg.DBPath = "127.0.0.1:0", filepath.Join(t.TempDir(), "hv.db")
	h := runHVWith(t, &cfg, hypervisor.Options{Local: &hypervisor.LocalVisor{PK: pk, Client: admin.NewClientFunc("test", pipe.Dial, "")}})
	h.setup()
	for range 2 {
		select {
		case <-ends:
		case <-time.After(30 * time.Second):
			t.Fatal("the stream was not followed again")
		}
	}
	st := h.visors()[pk]
	if !st.Local || !strings.Contains(st.Error, "ended its event stream") {
		t.Fatalf("state: %+v", st)
	}
}
