//go:build linux

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type serviceJSON struct {
	PK      string `json:"pk"`
	Port    int    `json:"port"`
	Version string `json:"version"`
	Country string `json:"country"`
	Label   string `json:"label"`
}

// proxyList is `cli proxy list --json` on v.
func proxyList(t *testing.T, v *visorNode) []serviceJSON {
	t.Helper()
	r := sw(t, "skywire", "cli", "proxy", "list", "--json", "--rpc", v.sock)
	if r.code != 0 {
		t.Fatalf("proxy list: %s", r.stderr)
	}
	var list []serviceJSON
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("proxy list: %v: %s", err, r.stdout)
	}
	return list
}

// A visor lists its skysocks in the service discovery while it runs (not
// one started with --private), with the operator's label and country;
// `cli proxy list` shows it; it goes at once when the app stops, and
// within the discovery's TTL when its visor is killed.
func TestServiceDiscoveryListsServers(t *testing.T) {
	n := startNetwork(t) // entries live 4 s here
	vs := startLineWith(t, n, []string{"stcp"}, func(i, _ int, _ []string) []any {
		args := []string{"--label", "exit <one>", "--country", "de"}
		if i == 0 {
			return []any{map[string]any{"app": "skysocks", "auto_start": true, "port": 3, "args": []string{"--private"}},
				map[string]any{"app": "skysocks-client", "auto_start": false, "port": 13, "args": []string{"--addr", "127.0.0.1:0"}}}
		}
		return []any{map[string]any{"app": "skysocks", "auto_start": true, "port": 3, "args": args}}
	}, nil)
	a, b := vs[0], vs[1]
	listed := func(list []serviceJSON) bool {
		return len(list) == 1 && list[0].PK == b.pk && list[0].Port == 3 && list[0].Label == "exit <one>" && list[0].Country == "DE" && list[0].Version != ""
	}
	until(t, "b's skysocks listed, and not a's private one", func() bool { return listed(proxyList(t, a)) })
	if r := sw(t, "skywire", "cli", "proxy", "list", "--sort", "country", "--rpc", a.sock); r.code != 0 || !strings.Contains(r.stdout, b.pk) || !strings.Contains(r.stdout, "exit <one>") {
		t.Fatalf("proxy list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := sw(t, "skywire", "cli", "vpn", "list", "--rpc", a.sock); r.code != 0 || !strings.Contains(r.stdout, "no VPN servers") {
		t.Fatalf("vpn list: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := sw(t, "skywire", "cli", "proxy", "list", "--sort", "speed", "--rpc", a.sock); r.code != 2 {
		t.Fatalf("an unknown sort: exit %d", r.code)
	}

	// With --ping, the round trip over a route; --best picks the server.
	r := sw(t, "skywire", "cli", "proxy", "list", "--ping", "--sort", "latency", "--json", "--rpc", a.sock)
	var pinged []struct {
		PK        string  `json:"pk"`
		LatencyMS float64 `json:"latency_ms"`
		PingError string  `json:"ping_error"`
	}
	if json.Unmarshal([]byte(r.stdout), &pinged); r.code != 0 || len(pinged) != 1 || pinged[0].LatencyMS <= 0 || pinged[0].PingError != "" {
		t.Fatalf("proxy list --ping: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := sw(t, "skywire", "cli", "proxy", "list", "--sort", "latency", "--rpc", a.sock); r.code != 2 {
		t.Fatalf("--sort latency without --ping: exit %d", r.code)
	}
	if r := sw(t, "skywire", "cli", "proxy", "start", "--best", "--rpc", a.sock); r.code != 0 || !strings.Contains(r.stderr, "picked "+b.pk) {
		t.Fatalf("proxy start --best: %d %s %s", r.code, r.stdout, r.stderr)
	}
	until(t, "the proxy connected to the best server", func() bool {
		r := sw(t, "skywire", "cli", "proxy", "status", "--rpc", a.sock)
		return r.code == 0 && strings.Contains(r.stdout, "connected to "+b.pk)
	})
	if r := sw(t, "skywire", "cli", "vpn", "start", "--best", "--rpc", a.sock); r.code == 0 || !strings.Contains(r.stderr, "no reachable vpn server") {
		t.Fatalf("vpn start --best with none listed: %d %s %s", r.code, r.stdout, r.stderr)
	}

	// Stopped: deregistered at once (well within the 4 s TTL).
	if r := sw(t, "skywire", "cli", "visor", "app", "stop", "skysocks", "--rpc", b.sock); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if list := proxyList(t, a); len(list) != 0 {
		t.Fatalf("listed after its app stopped: %+v", list)
	}
	if r := sw(t, "skywire", "cli", "visor", "app", "start", "skysocks", "--rpc", b.sock); r.code != 0 {
		t.Fatal(r.stderr)
	}
	until(t, "listed again", func() bool { return listed(proxyList(t, a)) })

	// Its visor killed: gone once the TTL passes, since nothing registers it again.
	b.proc.cmd.Process.Kill()
	<-b.proc.done
	killed := time.Now()
	until(t, "gone after the visor was killed", func() bool { return len(proxyList(t, a)) == 0 })
	if d := time.Since(killed); d > 8*time.Second {
		t.Fatalf("listed %v after its visor was killed (TTL 4 s)", d.Round(time.Second))
	}
}
