package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// natNet is two private hosts, each behind its own NAT (iptables
// MASQUERADE), and a "wan" namespace that routes between the NATs and runs
// the services:
//
//	hostA 10.1.0.2 ─ natA 10.1.0.1 | 198.18.1.2 ─┐
//	                                             wan 198.18.1.1, 198.18.2.1: skywire svc all
//	hostB 10.2.0.2 ─ natB 10.2.0.1 | 198.18.2.2 ─┘
//
// The hosts' addresses are not routable from the wan: any transport between
// them crosses both NATs.
type natNet struct {
	wan, natA, natB, hostA, hostB string
}

func needNetns(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("network namespaces are Linux only")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespace tests need root (CI runs as root)")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("network namespace tests need %s (apt-get install iproute2 iptables)", tool)
		}
	}
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// vethLink joins ns1 and ns2 with a veth pair (interfaces if1+id and
// if2+id) and gives each end its address.
func vethLink(t testing.TB, id, ns1, if1, addr1, ns2, if2, addr2 string) {
	t.Helper()
	run(t, "ip", "link", "add", if1+id, "type", "veth", "peer", "name", if2+id)
	run(t, "ip", "link", "set", if1+id, "netns", ns1)
	run(t, "ip", "link", "set", if2+id, "netns", ns2)
	run(t, "ip", "-n", ns1, "addr", "add", addr1, "dev", if1+id)
	run(t, "ip", "-n", ns2, "addr", "add", addr2, "dev", if2+id)
	run(t, "ip", "-n", ns1, "link", "set", if1+id, "up")
	run(t, "ip", "-n", ns2, "link", "set", if2+id, "up")
}

func newNatNet(t testing.TB) *natNet {
	t.Helper()
	var r [3]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	n := &natNet{wan: "sw" + id + "w", natA: "sw" + id + "na", natB: "sw" + id + "nb", hostA: "sw" + id + "ha", hostB: "sw" + id + "hb"}
	all := []string{n.wan, n.natA, n.natB, n.hostA, n.hostB}
	t.Cleanup(func() {
		for _, ns := range all {
			exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for _, ns := range all {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	link := func(ns1, if1, addr1, ns2, if2, addr2 string) { vethLink(t, id, ns1, if1, addr1, ns2, if2, addr2) }
	link(n.wan, "wa", "198.18.1.1/24", n.natA, "aw", "198.18.1.2/24")
	link(n.wan, "wb", "198.18.2.1/24", n.natB, "bw", "198.18.2.2/24")
	link(n.natA, "ah", "10.1.0.1/24", n.hostA, "ha", "10.1.0.2/24")
	link(n.natB, "bh", "10.2.0.1/24", n.hostB, "hb", "10.2.0.2/24")
	for _, ns := range []string{n.wan, n.natA, n.natB} {
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	}
	run(t, "ip", "-n", n.natA, "route", "add", "default", "via", "198.18.1.1")
	run(t, "ip", "-n", n.natB, "route", "add", "default", "via", "198.18.2.1")
	run(t, "ip", "-n", n.hostA, "route", "add", "default", "via", "10.1.0.1")
	run(t, "ip", "-n", n.hostB, "route", "add", "default", "via", "10.2.0.1")
	run(t, "ip", "netns", "exec", n.natA, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "aw"+id, "-j", "MASQUERADE")
	run(t, "ip", "netns", "exec", n.natB, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "bw"+id, "-j", "MASQUERADE")
	return n
}

func TestSUDPHAndDMSGAcrossNATs(t *testing.T) {
	needNetns(t)
	n := newNatNet(t)
	bin := filepath.Join(binDir, "skywire")
	in := func(ns string, args ...string) *process {
		return startCmd(t, "ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	}
	svc := in(n.wan, "svc", "all", "--host", "0.0.0.0", "--public-host", "198.18.1.1")

	dir := shortDir(t)
	type host struct {
		ns, cfg, sock, pk string
		proc              *process
	}
	hosts := []*host{{ns: n.hostA}, {ns: n.hostB}}
	for i, h := range hosts {
		name := string(rune('a' + i))
		h.cfg, h.sock = filepath.Join(dir, name+".json"), filepath.Join(dir, name+".sock")
		r := sw(t, "skywire", "visor", "gen-config", "-o", h.cfg, "--svc", "198.18.1.1", "--cli-addr", h.sock, "--json")
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		var res struct{ PK string }
		json.Unmarshal([]byte(r.stdout), &res)
		h.pk = res.PK
		h.proc = in(h.ns, "visor", "run", "-c", h.cfg, "--log-level", "debug")
		waitInfo(t, h.proc, "--rpc", h.sock)
	}
	a, b := hosts[0], hosts[1]
	addTP := func(typ string, timeout string) result {
		return sw(t, "skywire", "cli", "add-tp", b.pk, "--type", typ, "--timeout", timeout, "--rpc", a.sock, "--json")
	}
	lsTP := func(h *host) []tpInfo {
		r := sw(t, "skywire", "cli", "ls-tp", "--rpc", h.sock, "--json")
		var out []tpInfo
		json.Unmarshal([]byte(r.stdout), &out)
		return out
	}
	has := func(h *host, typ string) bool {
		for _, tp := range lsTP(h) {
			if tp.Type == typ {
				return true
			}
		}
		return false
	}

	// Neither host accepts inbound connections: stcpr to b cannot work.
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := addTP("stcpr", "3s")
		if r.code != 0 && !strings.Contains(r.stderr, "no stcpr address") {
			break // resolved b's NAT address, and could not connect through it
		}
		if r.code == 0 {
			t.Fatalf("stcpr crossed a NAT without port forwarding?\n%s", r.stdout)
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never bound stcpr: %s", r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// sudph punches through both NATs.
	var r result
	for {
		r = addTP("sudph", "10s")
		if r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sudph never came up: %s\na:\n%s\nb:\n%s", r.stderr, a.proc.stderr.String(), b.proc.stderr.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	until(t, "b has the sudph transport", func() bool { return has(b, "sudph") })

	// dmsg needs no inbound connection either.
	for {
		r = addTP("dmsg", "10s")
		if r.code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dmsg never came up: %s", r.stderr)
		}
		time.Sleep(500 * time.Millisecond)
	}
	until(t, "b has the dmsg transport", func() bool { return has(b, "dmsg") })

	// b's NAT starts dropping everything (no FIN, no RST): a notices.
	run(t, "ip", "netns", "exec", n.natB, "iptables", "-I", "FORWARD", "-j", "DROP")
	cut := time.Now()
	until(t, "a notices b is unreachable", func() bool { return len(lsTP(a)) == 0 })
	t.Logf("a noticed the cut after %v", time.Since(cut).Round(100*time.Millisecond))

	for _, h := range hosts {
		h.proc.stop(t)
	}
	svc.stop(t)
}
