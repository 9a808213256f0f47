package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/testtool"
)

// network is `skywire svc all` on free loopback ports.
type network struct {
	dmsgDisc, tpDisc, resolver, routeFinder, svcDisc string // URLs
	proc                                             *process
	args                                             []string // svc all's, to start it again
}

// freePorts are n loopback ports free for TCP and UDP (the resolver takes
// both), for the programs a test starts.
func freePorts(t testing.TB, n int) []int { t.Helper(); return testtool.FreePorts(t, n) }

func startNetwork(t testing.TB) *network {
	t.Helper()
	return startNetworkWith(t)
}

// startNetworkWith is startNetwork with more arguments for `svc all`.
func startNetworkWith(t testing.TB, extra ...string) *network {
	t.Helper()
	p := freePorts(t, 6)
	n := &network{
		dmsgDisc:    fmt.Sprintf("http://127.0.0.1:%d", p[0]),
		tpDisc:      fmt.Sprintf("http://127.0.0.1:%d", p[1]),
		resolver:    fmt.Sprintf("http://127.0.0.1:%d", p[2]),
		routeFinder: fmt.Sprintf("http://127.0.0.1:%d", p[4]),
		svcDisc:     fmt.Sprintf("http://127.0.0.1:%d", p[5]),
	}
	n.args = []string{"svc", "all", "--host", "127.0.0.1",
		"--dmsg-discovery-port", fmt.Sprint(p[0]), "--transport-discovery-port", fmt.Sprint(p[1]),
		"--address-resolver-port", fmt.Sprint(p[2]), "--dmsg-server-port", fmt.Sprint(p[3]),
		"--route-finder-port", fmt.Sprint(p[4]), "--service-discovery-port", fmt.Sprint(p[5]),
		"--entry-ttl", "4s"}
	n.args = append(n.args, extra...)
	n.run(t)
	return n
}

// run starts the services and waits until they answer and the dmsg server
// is listed.
func (n *network) run(t testing.TB) {
	t.Helper()
	n.proc = start(t, "skywire", n.args...)
	for _, u := range []string{n.dmsgDisc, n.tpDisc, n.resolver, n.routeFinder, n.svcDisc} {
		if u == "" {
			continue
		}
		waitHTTP(t, n.proc, u+"/health")
	}
	// The dmsg server has published itself once the discovery lists it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(n.dmsgDisc + "/v1/servers")
		if err == nil {
			var list []json.RawMessage
			json.NewDecoder(resp.Body).Decode(&list)
			resp.Body.Close()
			if len(list) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dmsg server never published:\n%s", n.proc.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitHTTP(t testing.TB, p *process, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("service exited: %v\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered:\n%s", url, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// visorNode is a generated config and, once started, its process.
type visorNode struct {
	name, cfg, sock, stcpAddr, pk string
	proc                          *process
}

func newVisor(t testing.TB, dir, name string, n *network) *visorNode {
	t.Helper()
	v := &visorNode{name: name, cfg: filepath.Join(dir, name+".json"), sock: filepath.Join(dir, name+".sock")}
	v.stcpAddr = fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	r := sw(t, "skywire", "visor", "gen-config", "-o", v.cfg, "--cli-addr", v.sock, "--stcp-addr", v.stcpAddr, "--local-path", "./"+name,
		"--dmsg-discovery", n.dmsgDisc, "--transport-discovery", n.tpDisc, "--address-resolver", n.resolver,
		"--route-finder", n.routeFinder, "--service-discovery", n.svcDisc, "--json")
	if r.code != 0 {
		t.Fatalf("gen-config: %s", r.stderr)
	}
	var res struct{ PK string }
	json.Unmarshal([]byte(r.stdout), &res)
	freeAppAddrs(t, v.cfg)
	v.pk = res.PK
	return v
}

// edit changes the visor's config file.
func (v *visorNode) edit(t testing.TB, fn func(cfg map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(v.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	fn(cfg)
	out, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(v.cfg, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

func (v *visorNode) start(t testing.TB) {
	t.Helper()
	v.proc = start(t, "skywire", "visor", "run", "-c", v.cfg, "--log-level", "debug")
	waitInfo(t, v.proc, "--rpc", v.sock)
}

type tpInfo struct {
	ID       string  `json:"id"`
	Type     string  `json:"type"`
	RemotePK string  `json:"remote_pk"`
	RTTMS    float64 `json:"rtt_ms"`
}

func (v *visorNode) lsTP(t testing.TB) []tpInfo {
	t.Helper()
	r := sw(t, "skywire", "cli", "ls-tp", "--rpc", v.sock, "--json")
	if r.code != 0 {
		t.Fatalf("ls-tp: %s", r.stderr)
	}
	var out []tpInfo
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("ls-tp --json printed %q: %v", r.stdout, err)
	}
	return out
}

func until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestTransportsBetweenProcesses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM is not deliverable on Windows")
	}
	n := startNetwork(t)
	dir := shortDir(t)
	a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
	a.edit(t, func(cfg map[string]any) {
		cfg["stcp"].(map[string]any)["pk_table"] = map[string]any{b.pk: b.stcpAddr}
	})
	a.start(t)
	b.start(t)

	for _, typ := range []string{"stcp", "stcpr", "sudph", "dmsg"} {
		t.Run(typ, func(t *testing.T) {
			var r result
			// stcpr and sudph need b bound at the resolver: retry briefly.
			until(t, "add-tp "+typ, func() bool {
				r = sw(t, "skywire", "cli", "add-tp", b.pk, "--type", typ, "--rpc", a.sock, "--json")
				return r.code == 0
			})
			var tp tpInfo
			if err := json.Unmarshal([]byte(r.stdout), &tp); err != nil || tp.Type != typ || tp.RemotePK != b.pk || len(tp.ID) != 32 {
				t.Fatalf("add-tp printed %q: %v", r.stdout, err)
			}
			until(t, "b lists it", func() bool {
				for _, x := range b.lsTP(t) {
					if x.ID == tp.ID && x.RemotePK == a.pk && x.Type == typ {
						return true
					}
				}
				return false
			})
			until(t, "rtt measured", func() bool {
				for _, x := range a.lsTP(t) {
					if x.ID == tp.ID && x.RTTMS > 0 {
						return true
					}
				}
				return false
			})
			if r := sw(t, "skywire", "cli", "visor", "rm-tp", tp.ID[:10], "--rpc", a.sock); r.code != 0 || !strings.Contains(r.stdout, "removed") {
				t.Fatalf("rm-tp: %d %s %s", r.code, r.stdout, r.stderr)
			}
			until(t, "gone on both sides", func() bool { return len(a.lsTP(t)) == 0 && len(b.lsTP(t)) == 0 })
		})
	}

	// With no type: the best that works (stcp, which a has an address for).
	r := sw(t, "skywire", "cli", "add-tp", b.pk, "--rpc", a.sock, "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"type": "stcp"`) {
		t.Fatalf("add-tp without a type: %s %s", r.stdout, r.stderr)
	}

	// Errors say what failed.
	nobody := newVisor(t, dir, "nobody", n).pk
	r = sw(t, "skywire", "cli", "add-tp", nobody, "--type", "stcpr", "--rpc", a.sock)
	if r.code != 1 || !strings.Contains(r.stderr, "no stcpr address") {
		t.Fatalf("unknown key: %d %s", r.code, r.stderr)
	}
	r = sw(t, "skywire", "cli", "add-tp", "02zz", "--rpc", a.sock)
	if r.code != 2 {
		t.Fatalf("bad key: %d %s", r.code, r.stderr)
	}
	r = sw(t, "skywire", "cli", "rm-tp", "ffffffff", "--rpc", a.sock)
	if r.code != 1 || !strings.Contains(r.stderr, "no transport") {
		t.Fatalf("rm-tp of nothing: %d %s", r.code, r.stderr)
	}

	for _, v := range []*visorNode{a, b} {
		if code := v.proc.stop(t); code != 0 {
			t.Fatalf("%s exited %d:\n%s", v.name, code, v.proc.stderr.String())
		}
	}
	if code := n.proc.stop(t); code != 0 {
		t.Fatalf("svc all exited %d:\n%s", code, n.proc.stderr.String())
	}
}

// A persistent transport survives its peer being killed and restarted.
func TestPersistentTransportAcrossPeerRestart(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGKILL semantics to test on Windows")
	}
	n := startNetwork(t)
	dir := shortDir(t)
	a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
	a.edit(t, func(cfg map[string]any) {
		cfg["stcp"].(map[string]any)["pk_table"] = map[string]any{b.pk: b.stcpAddr}
		cfg["transport"].(map[string]any)["persistent"] = []any{map[string]any{"pk": b.pk, "type": "stcp"}}
	})
	b.start(t)
	a.start(t)
	up := func() bool {
		tps := a.lsTP(t)
		return len(tps) == 1 && tps[0].RemotePK == b.pk && tps[0].Type == "stcp"
	}
	until(t, "persistent transport up at start", up)

	// b dies without a word.
	b.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-b.proc.done
	until(t, "a notices b is gone", func() bool { return len(a.lsTP(t)) == 0 })

	b.start(t)
	until(t, "persistent transport back", up)
	until(t, "b sees it too", func() bool { return len(b.lsTP(t)) == 1 })
	a.proc.stop(t)
	b.proc.stop(t)
	n.proc.stop(t)
}
