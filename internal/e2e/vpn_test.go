//go:build linux

package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/testtool"
)

// vpnNet is clients, a server and an internet host beyond the server:
//
//	client i 10.50.(10+i).2 ─ 10.50.(10+i).1 server 10.50.2.1 ─ 10.50.2.2 internet
//
// The server does not forward (a new namespace's default) until
// vpn-server turns it on, so a client reaches the internet host only
// through the tunnel. The services run in the server namespace, and so
// does the relay visor of the two-hop tests. Each client namespace has its
// own resolv.conf (ip netns exec binds /etc/netns/NS/resolv.conf).
type vpnNet struct {
	t       testing.TB
	id      string
	clients []string
	server  string
	inet    string
	dir     string
	visors  map[string]*nsVisor
}

// nsVisor is a visor process in a namespace.
type nsVisor struct {
	ns, cfg, sock, pk string
	proc              *process
}

func newVPNNet(t testing.TB, clients int) *vpnNet {
	t.Helper()
	needNetns(t)
	needCurl(t)
	testtool.Need(t, "python3") // the internet host's servers
	var r [3]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	n := &vpnNet{t: t, id: id, server: "sw" + id + "s", inet: "sw" + id + "i", dir: shortDir(t), visors: map[string]*nsVisor{}}
	for i := range clients {
		n.clients = append(n.clients, fmt.Sprintf("sw%sc%d", id, i))
	}
	all := append([]string{n.server, n.inet}, n.clients...)
	t.Cleanup(func() {
		for _, ns := range all {
			exec.Command("ip", "netns", "del", ns).Run()
			os.RemoveAll(filepath.Join("/etc/netns", ns))
		}
	})
	for _, ns := range all {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
		os.MkdirAll(filepath.Join("/etc/netns", ns), 0o755)
		os.WriteFile(filepath.Join("/etc/netns", ns, "resolv.conf"), []byte("nameserver 192.0.2.53\n"), 0o644)
	}
	link := func(ns1, if1, addr1, ns2, if2, addr2 string) { vethLink(t, id, ns1, if1, addr1, ns2, if2, addr2) }
	for i, c := range n.clients {
		link(c, "c"+strconv.Itoa(i), fmt.Sprintf("10.50.%d.2/24", 10+i), n.server, "s"+strconv.Itoa(i), fmt.Sprintf("10.50.%d.1/24", 10+i))
		run(t, "ip", "-n", c, "route", "add", "default", "via", fmt.Sprintf("10.50.%d.1", 10+i))
	}
	link(n.server, "si", "10.50.2.1/24", n.inet, "is", "10.50.2.2/24")
	run(t, "ip", "-n", n.server, "route", "add", "default", "via", "10.50.2.2")
	// The internet host: a web server that answers with the address it
	// sees, and a DNS server that records who asked.
	startCmd(t, "ip", "netns", "exec", n.inet, "python3", "-c", `
import http.server
block = bytes(range(251)) * 261  # 65511 bytes
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/big/"):
            n = int(self.path[5:])
            self.send_response(200); self.send_header("Content-Length", str(n)); self.end_headers()
            while n > 0:
                k = min(n, len(block)); self.wfile.write(block[:k]); n -= k
            return
        b = self.client_address[0].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
`)
	startCmd(t, "ip", "netns", "exec", n.inet, "python3", "-c", `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 53))
while True:
    q, a = s.recvfrom(512)
    open(sys.argv[1], "a").write(a[0] + "\n")
    s.sendto(q[:2] + b"\x81\x83" + q[4:], a)  # a response: no such name
`, filepath.Join(n.dir, "dns-askers"))
	bin := filepath.Join(binDir, "skywire")
	startCmd(t, "ip", "netns", "exec", n.server, bin, "svc", "all", "--host", "0.0.0.0", "--public-host", "10.50.2.1")
	return n
}

// visor makes a visor in ns named name, with apps, and starts it.
func (n *vpnNet) visor(name, ns string, apps []any, edits ...func(cfg map[string]any)) *nsVisor {
	t := n.t
	t.Helper()
	v := &nsVisor{ns: ns, cfg: filepath.Join(n.dir, name+".json"), sock: filepath.Join(n.dir, name+".sock")}
	r := sw(t, "skywire", "visor", "gen-config", "-o", v.cfg, "--svc", "10.50.2.1", "--cli-addr", v.sock, "--local-path", "./"+name, "--stcp-addr=", "--json")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	var res struct{ PK string }
	json.Unmarshal([]byte(r.stdout), &res)
	v.pk = res.PK
	(&visorNode{cfg: v.cfg}).edit(t, func(cfg map[string]any) {
		cfg["apps"] = apps
		for _, e := range edits {
			e(cfg)
		}
	})
	n.visors[name] = v
	v.start(t)
	return v
}

func (v *nsVisor) start(t testing.TB) {
	t.Helper()
	v.proc = startCmd(t, "ip", "netns", "exec", v.ns, filepath.Join(binDir, "skywire"), "visor", "run", "-c", v.cfg, "--log-level", "debug")
	waitInfo(t, v.proc, "--rpc", v.sock)
}

func (v *nsVisor) cli(t testing.TB, args ...string) result {
	t.Helper()
	return sw(t, "skywire", append(append([]string{"cli"}, args...), "--rpc", v.sock)...)
}

// addTP adds a dmsg transport from v to pk, retrying while pk publishes
// itself.
func (v *nsVisor) addTP(t testing.TB, pk string) { v.addTPType(t, pk, "dmsg") }

// addTPType adds a persistent transport of type typ from v to pk.
func (v *nsVisor) addTPType(t testing.TB, pk, typ string) {
	t.Helper()
	until(t, "a transport to "+pk[:8], func() bool { return v.cli(t, "add-tp", pk, "--type", typ, "--persistent").code == 0 })
}

func (v *nsVisor) app(t testing.TB, verb, name string) {
	t.Helper()
	if r := v.cli(t, "visor", "app", verb, name); r.code != 0 {
		t.Fatalf("app %s %s: %s", verb, name, r.stderr)
	}
}

func (v *nsVisor) appPID(t testing.TB, name string) int {
	t.Helper()
	var apps []appJSON
	json.Unmarshal([]byte(v.cli(t, "visor", "app", "ls", "--json").stdout), &apps)
	for _, a := range apps {
		if a.Name == name && a.State == "running" {
			return a.PID
		}
	}
	return 0
}

// curl fetches the internet host's page from namespace ns: what it saw as
// the source, or an error.
func (n *vpnNet) curl(ns string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-sS", "-m", "3", "http://10.50.2.2:8080/").CombinedOutput()
	return string(out), err
}

// untilThrough waits for ns to reach the internet host through the tunnel.
func (n *vpnNet) untilThrough(ns string, within time.Duration) {
	t := n.t
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		seen, err := n.curl(ns)
		if err == nil {
			if seen != "10.50.2.1" {
				t.Fatalf("the internet host saw %q, want the server's address 10.50.2.1", seen)
			}
			return
		}
		if time.Now().After(deadline) {
			var logs strings.Builder
			for name, v := range n.visors {
				fmt.Fprintf(&logs, "--- %s:\n%s\n", name, v.proc.stderr.String())
				for _, app := range []string{"vpn-client", "vpn-server"} {
					if r := v.cli(t, "visor", "app", "logs", app); r.code == 0 {
						fmt.Fprintf(&logs, "--- %s's %s:\n%s\n", name, app, r.stdout)
					}
				}
			}
			fw, _ := exec.Command("ip", "netns", "exec", ns, "iptables", "-S", "-v").CombinedOutput()
			rt, _ := exec.Command("ip", "netns", "exec", ns, "ip", "route").CombinedOutput()
			t.Fatalf("%s never reached the internet host through the tunnel: %v %s\nfirewall:\n%s\nroutes:\n%s\n%s", ns, err, seen, fw, rt, logs.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// hostState is what the VPN may change: it must come back byte for byte.
func hostState(t testing.TB, ns string) string {
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

func in(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func vpnServerApp(args ...string) []any {
	return []any{map[string]any{"app": "vpn-server", "port": 44, "auto_start": true, "args": append([]string{"--secure=false"}, args...)}}
}

func vpnClientApp(server string, args ...string) []any {
	return []any{map[string]any{"app": "vpn-client", "port": 43, "auto_start": false, "args": append([]string{"--srv", server}, args...)}}
}

// The client reaches the internet host through the tunnel, which sees the
// server's address; SIGKILL of vpn-client, then a start and a stop, leave
// the client's routes, rules, firewall and resolv.conf as they were, and
// the server's too once vpn-server stops.
func TestVPNThroughServer(t *testing.T) {
	n := newVPNNet(t, 1)
	c := n.clients[0]
	clientBefore, serverBefore := hostState(t, c), hostState(t, n.server)
	srv := n.visor("s", n.server, vpnServerApp())
	cl := n.visor("c", c, vpnClientApp(srv.pk))
	cl.addTP(t, srv.pk)
	if out, err := n.curl(c); err == nil {
		t.Fatalf("the client reached the internet host without the VPN: %s", out)
	}
	if r := cl.cli(t, "vpn", "start", srv.pk); r.code != 0 {
		t.Fatalf("vpn start: %s", r.stderr)
	}
	n.untilThrough(c, time.Minute)
	if routes := in(t, c, "ip", "route"); !strings.Contains(routes, "0.0.0.0/1 dev swvpn0") || !strings.Contains(routes, "10.50.2.1 via 10.50.10.1") {
		t.Fatalf("client routes while connected (the full tunnel, the services kept outside):\n%s", routes)
	}
	var st struct {
		Connected bool    `json:"connected"`
		Server    string  `json:"server"`
		Address   string  `json:"address"`
		Down      uint64  `json:"down"`
		Latency   float64 `json:"latency_ms"`
		Restored  bool    `json:"restored"`
	}
	until(t, "vpn status: connected", func() bool {
		json.Unmarshal([]byte(cl.cli(t, "vpn", "status", "--json").stdout), &st)
		return st.Connected && st.Server == srv.pk && strings.HasPrefix(st.Address, "10.211.") && st.Down > 0 && st.Latency > 0
	})
	if r := cl.cli(t, "vpn", "status"); r.code != 0 || !strings.Contains(r.stdout, "connected") {
		t.Fatalf("vpn status: %s %s", r.stdout, r.stderr)
	}
	// The server's visor lists its vpn-server in the service discovery:
	// `vpn list` finds it, with its round trip, and `vpn start --best` picks it.
	until(t, "vpn list shows the server", func() bool {
		var list []struct {
			PK        string  `json:"pk"`
			Port      int     `json:"port"`
			LatencyMS float64 `json:"latency_ms"`
		}
		json.Unmarshal([]byte(cl.cli(t, "vpn", "list", "--ping", "--json").stdout), &list)
		return len(list) == 1 && list[0].PK == srv.pk && list[0].Port == 44 && list[0].LatencyMS > 0
	})

	// SIGKILL vpn-client, then `vpn stop`: everything as it was.
	pid := cl.appPID(t, "vpn-client")
	if pid == 0 {
		t.Fatal("no vpn-client pid")
	}
	run(t, "kill", "-KILL", strconv.Itoa(pid))
	until(t, "vpn-client gone", func() bool { return cl.appPID(t, "vpn-client") == 0 })
	if hostState(t, c) == clientBefore {
		t.Fatal("the killed client left nothing to restore: the test proves nothing")
	}
	r := cl.cli(t, "vpn", "stop", "--json")
	if json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || !st.Restored {
		t.Fatalf("vpn stop after a kill: %s %s", r.stdout, r.stderr)
	}
	if after := hostState(t, c); after != clientBefore {
		t.Fatalf("after vpn stop, the client's host is not as it was:\nbefore:\n%s\nafter:\n%s", clientBefore, after)
	}
	// Killed again; this time the next start restores, and a stop after it.
	cl.cli(t, "vpn", "start", srv.pk)
	n.untilThrough(c, time.Minute)
	run(t, "kill", "-KILL", strconv.Itoa(cl.appPID(t, "vpn-client")))
	until(t, "vpn-client gone", func() bool { return cl.appPID(t, "vpn-client") == 0 })
	cl.app(t, "start", "vpn-client")
	n.untilThrough(c, time.Minute)
	cl.cli(t, "vpn", "stop")
	if after := hostState(t, c); after != clientBefore {
		t.Fatalf("the client's host is not as it was:\nbefore:\n%s\nafter:\n%s", clientBefore, after)
	}
	srv.app(t, "stop", "vpn-server")
	if after := hostState(t, n.server); after != serverBefore {
		t.Fatalf("the server's host is not as it was:\nbefore:\n%s\nafter:\n%s", serverBefore, after)
	}
}

// With --killswitch and --dns: DNS goes through the tunnel, no IPv6 leaves
// outside it, and when the server's visor is killed nothing from the
// client reaches the internet host by any other way (the server still
// forwards: its vpn-server was killed with no chance to undo); traffic
// resumes by itself when the server returns.
func TestVPNKillSwitchAndDNS(t *testing.T) {
	n := newVPNNet(t, 1)
	c := n.clients[0]
	// The client has an IPv6 way out, through the server's namespace, and
	// uses it before the VPN starts: every packet to 2001:db8::1 is counted
	// there.
	in(t, n.server, "ip", "-6", "addr", "add", "fd50::1/64", "dev", "s0"+n.id, "nodad")
	in(t, c, "ip", "-6", "addr", "add", "fd50::2/64", "dev", "c0"+n.id, "nodad")
	in(t, c, "ip", "-6", "route", "add", "default", "via", "fd50::1")
	in(t, n.server, "ip6tables", "-t", "raw", "-I", "PREROUTING", "-d", "2001:db8::1")
	send6 := func() { // a TCP SYN to 2001:db8::1 (curl: no ping on every machine)
		exec.Command("ip", "netns", "exec", c, "curl", "-sS", "-g", "-m", "1", "http://[2001:db8::1]:80/").Run()
	}
	v6Seen := func() int {
		return firstCount(in(t, n.server, "ip6tables", "-t", "raw", "-L", "PREROUTING", "-v", "-n", "-x"))
	}
	send6()
	if v6Seen() == 0 {
		t.Fatal("the client's IPv6 way out does not work: the leak test would prove nothing")
	}
	clientBefore := hostState(t, c)
	srv := n.visor("s", n.server, vpnServerApp())
	cl := n.visor("c", c, vpnClientApp(srv.pk, "--killswitch", "--dns", "10.50.2.2"))
	cl.addTP(t, srv.pk)
	cl.app(t, "start", "vpn-client")
	n.untilThrough(c, time.Minute)

	// DNS: the resolver is the internet host's, reached through the tunnel.
	if rc := in(t, c, "cat", "/etc/resolv.conf"); !strings.Contains(rc, "nameserver 10.50.2.2") {
		t.Fatalf("resolv.conf while connected:\n%s", rc)
	}
	exec.Command("ip", "netns", "exec", c, "getent", "hosts", "skywire.test").Run()
	askers, _ := os.ReadFile(filepath.Join(n.dir, "dns-askers"))
	if strings.TrimSpace(string(askers)) == "" || strings.Contains(string(askers), "10.50.10.2") {
		t.Fatalf("DNS askers seen by the resolver: %q (want only the server's 10.50.2.1)", askers)
	}
	// IPv6: nothing leaves while connected.
	in(t, n.server, "ip6tables", "-t", "raw", "-Z", "PREROUTING")
	for range 3 {
		send6()
	}
	if k := v6Seen(); k != 0 {
		t.Fatalf("%d IPv6 packets left outside the tunnel", k)
	}

	// Give the client another way out: the server forwards and masquerades
	// whatever comes (as one whose vpn-server was killed with no chance to
	// undo). Then count what reaches the internet host.
	in(t, n.server, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	in(t, n.server, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "si"+n.id, "-j", "MASQUERADE")
	in(t, n.inet, "iptables", "-I", "INPUT", "-p", "tcp", "--dport", "8080", "-j", "ACCEPT")
	noneThrough := func(when string) {
		t.Helper()
		in(t, n.inet, "iptables", "-Z", "INPUT")
		for range 5 {
			n.curl(c)
		}
		counted := in(t, n.inet, "iptables", "-L", "INPUT", "-v", "-n", "-x")
		if pkts := firstCount(counted); pkts != 0 {
			t.Fatalf("%s: %d packets from the client reached the internet host:\n%s", when, pkts, counted)
		}
	}
	srvVisor := n.visors["s"]
	srvVisor.proc.cmd.Process.Kill()
	<-srvVisor.proc.done
	if pid := findPID("vpn-server"); pid != 0 {
		killPID(pid)
	}
	noneThrough("the server's visor killed")
	srvVisor.start(t)
	n.untilThrough(c, 90*time.Second)

	// vpn-client killed: its device and routes are gone, the kill switch
	// holds until it starts again (or `vpn stop`).
	killPID(cl.appPID(t, "vpn-client"))
	until(t, "vpn-client gone", func() bool { return cl.appPID(t, "vpn-client") == 0 })
	noneThrough("vpn-client killed")
	cl.app(t, "start", "vpn-client")
	n.untilThrough(c, time.Minute)
	cl.app(t, "stop", "vpn-client")
	if after := hostState(t, c); after != clientBefore {
		t.Fatalf("the client's host is not as it was:\nbefore:\n%s\nafter:\n%s", clientBefore, after)
	}
}

// findPID finds a process of ours by its command line, in any namespace.
func findPID(app string) int {
	out, _ := exec.Command("pgrep", "-f", filepath.Join(binDir, "skywire")+" "+app).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			return pid
		}
	}
	return 0
}

// killPID sends SIGKILL to pid, one of this test's processes.
func killPID(pid int) {
	if pid == 0 {
		return
	}
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill()
	}
}

// firstCount is the packet count of the first rule in `iptables -L -v -x`.
func firstCount(listing string) int {
	lines := strings.Split(listing, "\n")
	if len(lines) < 3 {
		return -1
	}
	f := strings.Fields(lines[2])
	if len(f) == 0 {
		return -1
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return -1
	}
	return n
}

// Two clients on one server, both downloading at once, byte-exact, one
// of them over two hops (client — relay — server) and with plain packets
// (no segmentation offload).
func TestVPNTwoClientsAndTwoHops(t *testing.T) {
	n := newVPNNet(t, 2)
	srv := n.visor("s", n.server, vpnServerApp())
	relay := n.visor("r", n.server, nil)
	a := n.visor("a", n.clients[0], vpnClientApp(srv.pk))
	b := n.visor("b", n.clients[1], vpnClientApp(srv.pk, "--no-offload")) // plain packets beside a's offload
	a.addTP(t, srv.pk)
	b.addTP(t, relay.pk) // b's only way to the server is through the relay
	relay.addTP(t, srv.pk)
	a.app(t, "start", "vpn-client")
	n.untilThrough(n.clients[0], time.Minute)
	b.app(t, "start", "vpn-client") // a second client does not disturb the first
	n.untilThrough(n.clients[1], time.Minute)
	n.untilThrough(n.clients[0], 10*time.Second)
	var rules []ruleJSON
	json.Unmarshal([]byte(relay.cli(t, "visor", "route", "ls", "--json").stdout), &rules)
	if len(rules) == 0 {
		t.Fatal("b's tunnel does not go through the relay")
	}

	const size = 48 << 20
	want := patternDigest(size)
	errs := make(chan error, 2)
	for _, ns := range n.clients {
		go func() {
			out, err := exec.Command("ip", "netns", "exec", ns, "sh", "-c",
				fmt.Sprintf("curl -sS -m 120 http://10.50.2.2:8080/big/%d | sha256sum", size)).CombinedOutput()
			if err == nil && !strings.HasPrefix(string(out), hex.EncodeToString(want[:])) {
				err = fmt.Errorf("digest %s", out)
			}
			if err != nil {
				err = fmt.Errorf("%s: %v %s", ns, err, out)
			}
			errs <- err
		}()
	}
	for range n.clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// patternDigest is the SHA-256 of the internet host's /big/N: bytes 0…250
// over and over.
func patternDigest(n int) [32]byte {
	block := make([]byte, 251)
	for i := range block {
		block[i] = byte(i)
	}
	h := sha256.New()
	for n > 0 {
		k := min(n, len(block))
		h.Write(block[:k])
		n -= k
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

// vpn-client run by hand (a link named vpn-client, as on a router) attaches
// itself to the local visor: it shows as the visor's running app, works,
// and leaves the host as it was when it gets SIGTERM.
func TestVPNClientByHand(t *testing.T) {
	n := newVPNNet(t, 1)
	c := n.clients[0]
	before := hostState(t, c)
	srv := n.visor("s", n.server, vpnServerApp())
	cl := n.visor("c", c, vpnClientApp(srv.pk))
	cl.addTP(t, srv.pk)
	link := filepath.Join(n.dir, "vpn-client")
	if err := os.Symlink(filepath.Join(binDir, "skywire"), link); err != nil {
		t.Fatal(err)
	}
	p := startCmd(t, "ip", "netns", "exec", c, "env", "SKYWIRE_CLI_ADDR="+cl.sock, link, "--srv", srv.pk)
	n.untilThrough(c, time.Minute)
	if pid := cl.appPID(t, "vpn-client"); pid != p.cmd.Process.Pid {
		t.Fatalf("the visor lists vpn-client with pid %d, the process is %d", pid, p.cmd.Process.Pid)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("vpn-client exited %d:\n%s", code, p.stderr.String())
	}
	until(t, "the visor sees it gone", func() bool { return cl.appPID(t, "vpn-client") == 0 })
	if after := hostState(t, c); after != before {
		t.Fatalf("the host is not as it was:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
