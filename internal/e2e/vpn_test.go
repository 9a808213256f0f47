//go:build linux

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vpnNet is a client, a server and an internet host beyond the server:
//
//	client 10.50.1.2 ─ 10.50.1.1 server 10.50.2.1 ─ 10.50.2.2 internet
//
// The server does not forward (a new namespace's default) until
// vpn-server turns it on, so the client reaches the internet host only
// through the tunnel. The services run in the server namespace.
type vpnNet struct {
	id, client, server, inet string
}

func newVPNNet(t *testing.T) *vpnNet {
	t.Helper()
	var r [3]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	n := &vpnNet{id: id, client: "sw" + id + "c", server: "sw" + id + "s", inet: "sw" + id + "i"}
	all := []string{n.client, n.server, n.inet}
	t.Cleanup(func() {
		for _, ns := range all {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range all {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	link := func(ns1, if1, addr1, ns2, if2, addr2 string) {
		run(t, "ip", "link", "add", if1+id, "type", "veth", "peer", "name", if2+id)
		run(t, "ip", "link", "set", if1+id, "netns", ns1)
		run(t, "ip", "link", "set", if2+id, "netns", ns2)
		run(t, "ip", "-n", ns1, "addr", "add", addr1, "dev", if1+id)
		run(t, "ip", "-n", ns2, "addr", "add", addr2, "dev", if2+id)
		run(t, "ip", "-n", ns1, "link", "set", if1+id, "up")
		run(t, "ip", "-n", ns2, "link", "set", if2+id, "up")
	}
	link(n.client, "cs", "10.50.1.2/24", n.server, "sc", "10.50.1.1/24")
	link(n.server, "si", "10.50.2.1/24", n.inet, "is", "10.50.2.2/24")
	run(t, "ip", "-n", n.client, "route", "add", "default", "via", "10.50.1.1")
	run(t, "ip", "-n", n.server, "route", "add", "default", "via", "10.50.2.2")
	return n
}

// in runs a command in namespace ns and returns its output.
func in(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// hostState is what the VPN client may change: it must come back byte for
// byte.
func hostState(t *testing.T, ns string) string {
	t.Helper()
	var b strings.Builder
	// (iptables -S per table: iptables-save also lists the tables a rule
	// once loaded, empty or not.)
	for _, args := range [][]string{{"ip", "route"}, {"ip", "-6", "route"}, {"ip", "rule"}, {"ip", "-6", "rule"},
		{"iptables", "-S"}, {"iptables", "-t", "nat", "-S"}, {"iptables", "-t", "mangle", "-S"}, {"ip6tables", "-S"},
		{"sysctl", "-n", "net.ipv4.ip_forward"}, {"cat", "/etc/resolv.conf"}} {
		out, _ := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
		b.Write(out)
		b.WriteString("\n")
	}
	return b.String()
}

// The client reaches the internet host through the tunnel, which sees the
// server's address; SIGKILL of vpn-client, then a start and a stop, leave
// the client's routes, rules and firewall as they were, and the server's
// too once vpn-server stops.
func TestVPNThroughServer(t *testing.T) {
	needNetns(t)
	needCurl(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("needs python3 for the internet host's web server")
	}
	n := newVPNNet(t)
	bin := filepath.Join(binDir, "skywire")
	inNS := func(ns string, args ...string) *process {
		return startCmd(t, "ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	}
	// The internet host answers with the address it sees.
	web := startCmd(t, "ip", "netns", "exec", n.inet, "python3", "-c", `
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = self.client_address[0].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
`)
	_ = web
	svc := inNS(n.server, "svc", "all", "--host", "0.0.0.0", "--public-host", "10.50.1.1")
	_ = svc
	dir := shortDir(t)
	type host struct {
		ns, cfg, sock, pk string
		proc              *process
	}
	srv := &host{ns: n.server}
	cl := &host{ns: n.client}
	for name, h := range map[string]*host{"s": srv, "c": cl} {
		h.cfg, h.sock = filepath.Join(dir, name+".json"), filepath.Join(dir, name+".sock")
		r := sw(t, "skywire", "visor", "gen-config", "-o", h.cfg, "--svc", "10.50.1.1", "--cli-addr", h.sock, "--local-path", "./"+name, "--json")
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		var res struct{ PK string }
		json.Unmarshal([]byte(r.stdout), &res)
		h.pk = res.PK
	}
	srvNode := &visorNode{cfg: srv.cfg}
	srvNode.edit(t, func(cfg map[string]any) {
		cfg["apps"] = []any{map[string]any{"app": "vpn-server", "port": 44, "auto_start": true, "args": []string{"--secure=false"}}}
	})
	clNode := &visorNode{cfg: cl.cfg}
	clNode.edit(t, func(cfg map[string]any) {
		cfg["apps"] = []any{map[string]any{"app": "vpn-client", "port": 43, "auto_start": false, "args": []string{"--srv", srv.pk}}}
	})
	before := hostState(t, n.client)
	serverBefore := hostState(t, n.server)
	srv.proc = inNS(n.server, "visor", "run", "-c", srv.cfg, "--log-level", "debug")
	waitInfo(t, srv.proc, "--rpc", srv.sock)
	cl.proc = inNS(n.client, "visor", "run", "-c", cl.cfg, "--log-level", "debug")
	waitInfo(t, cl.proc, "--rpc", cl.sock)
	until(t, "a transport client → server", func() bool {
		return sw(t, "skywire", "cli", "add-tp", srv.pk, "--type", "dmsg", "--rpc", cl.sock).code == 0
	})
	if out, err := exec.Command("ip", "netns", "exec", n.client, "curl", "-sS", "-m", "2", "http://10.50.2.2:8080/").CombinedOutput(); err == nil {
		t.Fatalf("the client reached the internet host without the VPN: %s", out)
	}

	start := func() {
		t.Helper()
		if r := sw(t, "skywire", "cli", "visor", "app", "start", "vpn-client", "--rpc", cl.sock); r.code != 0 {
			t.Fatalf("app start vpn-client: %s", r.stderr)
		}
	}
	start()
	var seen string
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := exec.Command("ip", "netns", "exec", n.client, "curl", "-sS", "-m", "3", "http://10.50.2.2:8080/").CombinedOutput()
		if err == nil {
			seen = string(out)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never through the tunnel: %v %s\nclient visor:\n%s\nserver visor:\n%s", err, out, cl.proc.stderr.String(), srv.proc.stderr.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
	if seen != "10.50.2.1" {
		t.Fatalf("the internet host saw %q, want the server's address 10.50.2.1", seen)
	}
	if routes := in(t, n.client, "ip", "route"); !strings.Contains(routes, "0.0.0.0/1 dev swvpn0") || !strings.Contains(routes, "10.50.1.1 dev cs"+n.id) {
		t.Fatalf("client routes while connected:\n%s", routes)
	}

	// SIGKILL vpn-client: the next start restores what it left, and a stop
	// restores the rest.
	var apps []appJSON
	json.Unmarshal([]byte(sw(t, "skywire", "cli", "visor", "app", "ls", "--json", "--rpc", cl.sock).stdout), &apps)
	pid := 0
	for _, a := range apps {
		if a.Name == "vpn-client" {
			pid = a.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no vpn-client pid: %+v", apps)
	}
	run(t, "kill", "-KILL", strconv.Itoa(pid))
	until(t, "vpn-client gone", func() bool {
		json.Unmarshal([]byte(sw(t, "skywire", "cli", "visor", "app", "ls", "--json", "--rpc", cl.sock).stdout), &apps)
		for _, a := range apps {
			if a.Name == "vpn-client" {
				return a.State != "running"
			}
		}
		return false
	})
	if hostState(t, n.client) == before {
		t.Fatal("the killed client left nothing to restore: the test proves nothing")
	}
	start()
	until(t, "connected again", func() bool {
		return exec.Command("ip", "netns", "exec", n.client, "curl", "-sS", "-m", "3", "http://10.50.2.2:8080/").Run() == nil
	})
	if r := sw(t, "skywire", "cli", "visor", "app", "stop", "vpn-client", "--rpc", cl.sock); r.code != 0 {
		t.Fatalf("app stop vpn-client: %s", r.stderr)
	}
	if after := hostState(t, n.client); after != before {
		t.Fatalf("the client's host is not as it was:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if r := sw(t, "skywire", "cli", "visor", "app", "stop", "vpn-server", "--rpc", srv.sock); r.code != 0 {
		t.Fatalf("app stop vpn-server: %s", r.stderr)
	}
	if after := hostState(t, n.server); after != serverBefore {
		t.Fatalf("the server's host is not as it was:\nbefore:\n%s\nafter:\n%s", serverBefore, after)
	}
}
