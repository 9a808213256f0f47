//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// iperfResult is one iperf3 run: Gbit/s received, and the machine's busy
// CPU-seconds per GiB moved.
type iperfResult struct {
	gbps, cpuPerGiB float64
}

func (r iperfResult) String() string {
	return fmt.Sprintf("%.2f Gbit/s (%.1f CPU-s/GiB)", r.gbps, r.cpuPerGiB)
}

// iperf runs iperf3 from namespace ns to addr (an iperf3 server there)
// for secs seconds with streams streams.
func iperf(tb testing.TB, ns, addr string, streams, secs int) iperfResult {
	tb.Helper()
	cpu0 := cpuJiffies(tb)
	out, err := exec.Command("ip", "netns", "exec", ns, "iperf3", "-c", addr, "-J", "-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams)).Output()
	cpu := cpuJiffies(tb) - cpu0
	if err != nil {
		tb.Fatalf("iperf3 to %s: %v\n%s", addr, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		tb.Fatalf("iperf3 output: %v", err)
	}
	gib := r.End.SumReceived.Bytes / (1 << 30)
	return iperfResult{gbps: r.End.SumReceived.BitsPerSecond / 1e9, cpuPerGiB: cpu / max(gib, 1e-9)}
}

// connectRTT is the median TCP connect time (SYN to SYN-ACK: one round
// trip) from ns to addr, in ms, over 20 connects (no ping on every machine).
func connectRTT(tb testing.TB, ns, addr string) float64 {
	tb.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "python3", "-c", `
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
ts = []
for _ in range(20):
    s = socket.socket(); t = time.perf_counter(); s.connect((host, int(port))); ts.append(time.perf_counter() - t); s.close()
ts.sort(); print(ts[len(ts)//2] * 1000)
`, addr).Output()
	if err != nil {
		tb.Fatalf("connect RTT to %s: %v", addr, err)
	}
	ms, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	return ms
}

// BenchmarkVPN measures the tunnel with iperf3, 1 and 4 streams, over 1 and
// 2 hops: (a) to the server's tunnel address, (b) to the internet host
// through the server, beside plain veth between the same namespaces in the
// same run (the reference: the server forwarding without the VPN) and
// upstream wireguard-go and nebula on the same paths (built from the
// module proxy; left out with a message where they cannot be); the
// machine's CPU-seconds per GiB; the round trip the tunnel adds; the RSS of
// the visors and the VPN apps.
func BenchmarkVPN(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("needs iperf3 (apt-get install iperf3)")
	}
	n := newVPNNet(b, 2)
	c1, c2 := n.clients[0], n.clients[1]
	startCmd(b, "ip", "netns", "exec", n.server, "iperf3", "-s")
	startCmd(b, "ip", "netns", "exec", n.inet, "iperf3", "-s")
	time.Sleep(300 * time.Millisecond)
	const secs = 5
	// References: plain veth to the server, and routed to the internet
	// host (forwarding on for the measure only).
	vethA1, vethA4 := iperf(b, c1, "10.50.10.1", 1, secs), iperf(b, c1, "10.50.10.1", 4, secs)
	in(b, n.server, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	in(b, n.inet, "ip", "route", "add", "10.50.10.0/24", "via", "10.50.2.1")
	vethB1, vethB4 := iperf(b, c1, "10.50.2.2", 1, secs), iperf(b, c1, "10.50.2.2", 4, secs)
	vethRTT := connectRTT(b, c1, "10.50.2.2:8080")
	in(b, n.inet, "ip", "route", "del", "10.50.10.0/24", "via", "10.50.2.1")
	in(b, n.server, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	// The figure to beat, on the same paths in the same run: upstream
	// wireguard-go.
	refs := []*tunnelRef{{name: "wireguard-go", pkgs: []string{wireguardGo}, tunAddr: "10.212.0.1", up: func(dir string) func() { return wireguardRef(b, n, filepath.Join(dir, "wireguard"), c1) }},
		{name: "nebula", pkgs: []string{nebula, nebulaCert}, tunAddr: "10.213.0.1", up: func(dir string) func() { return nebulaRef(b, n, dir, c1) }}}
	for _, r := range refs {
		dir, why := goInstall(b, r.pkgs...)
		if dir == "" {
			r.why = why
			continue
		}
		stop := r.up(dir)
		r.a1, r.a4 = iperf(b, c1, r.tunAddr, 1, secs), iperf(b, c1, r.tunAddr, 4, secs)
		r.b1, r.b4 = iperf(b, c1, "10.50.2.2", 1, secs), iperf(b, c1, "10.50.2.2", 4, secs)
		r.rtt = connectRTT(b, c1, "10.50.2.2:8080")
		stop()
	}

	srv := n.visor("s", n.server, vpnServerApp())
	relay := n.visor("r", n.server, nil)
	one := n.visor("c1", c1, vpnClientApp(srv.pk))
	two := n.visor("c2", c2, vpnClientApp(srv.pk))
	one.addTPType(b, srv.pk, "stcpr") // direct, as a user's best transport would be
	two.addTPType(b, relay.pk, "stcpr")
	relay.addTPType(b, srv.pk, "stcpr")
	one.app(b, "start", "vpn-client")
	n.untilThrough(c1, time.Minute)
	a1, a4 := iperf(b, c1, "10.211.0.1", 1, secs), iperf(b, c1, "10.211.0.1", 4, secs)
	b1, b4 := iperf(b, c1, "10.50.2.2", 1, secs), iperf(b, c1, "10.50.2.2", 4, secs)
	rtt1 := connectRTT(b, c1, "10.50.2.2:8080")
	one.app(b, "stop", "vpn-client")
	two.app(b, "start", "vpn-client")
	n.untilThrough(c2, time.Minute)
	var st struct {
		Address string `json:"address"`
	}
	json.Unmarshal([]byte(two.cli(b, "vpn", "status", "--json").stdout), &st)
	tunAddr, err := netip.ParseAddr(st.Address)
	if err != nil {
		b.Fatalf("c2's tunnel address %q: %v", st.Address, err)
	}
	srvTun := tunAddr.Prev().String() // the /30's other end
	h2a1, h2a4 := iperf(b, c2, srvTun, 1, secs), iperf(b, c2, srvTun, 4, secs)
	h2b1, h2b4 := iperf(b, c2, "10.50.2.2", 1, secs), iperf(b, c2, "10.50.2.2", 4, secs)
	rtt2 := connectRTT(b, c2, "10.50.2.2:8080")

	b.Logf("plain veth to the server: %v (1 stream), %v (4)", vethA1, vethA4)
	b.Logf("plain routing to the internet host: %v (1), %v (4); TCP round trip %.3f ms", vethB1, vethB4, vethRTT)
	for _, r := range refs {
		if r.why != "" {
			b.Logf("no %s beside it: %s", r.name, r.why)
			continue
		}
		b.Logf("%s, (a) to the server's tunnel address: %v (1), %v (4)", r.name, r.a1, r.a4)
		b.Logf("%s, (b) to the internet host: %v (1), %v (4); round trip %.3f ms (+%.3f)", r.name, r.b1, r.b4, r.rtt, r.rtt-vethRTT)
	}
	b.Logf("1 hop, (a) to the server's tunnel address: %v (1), %v (4)", a1, a4)
	b.Logf("1 hop, (b) to the internet host: %v (1), %v (4); round trip %.3f ms (+%.3f)", b1, b4, rtt1, rtt1-vethRTT)
	b.Logf("2 hops, (a) to the server's tunnel address: %v (1), %v (4)", h2a1, h2a4)
	b.Logf("2 hops, (b) to the internet host: %v (1), %v (4); round trip %.3f ms (+%.3f)", h2b1, h2b4, rtt2, rtt2-vethRTT)
	var rss []string
	for _, name := range []string{"s", "r", "c1", "c2"} {
		v := n.visors[name]
		if v.proc.cmd.ProcessState == nil { // running
			rss = append(rss, fmt.Sprintf("visor %s %.1f MiB", name, rssMiB(b, v.proc.cmd.Process.Pid)))
		}
	}
	for _, app := range []string{"vpn-server", "vpn-client"} {
		if pid := findPID(app); pid != 0 {
			rss = append(rss, fmt.Sprintf("%s %.1f MiB", app, rssMiB(b, pid)))
		}
	}
	slices.Sort(rss)
	b.Logf("RSS: %s", strings.Join(rss, ", "))
	b.ReportMetric(b1.gbps, "Gbit/s-b-1hop-1stream")
	b.ReportMetric(b4.gbps, "Gbit/s-b-1hop-4streams")
	b.ReportMetric(a1.gbps, "Gbit/s-a-1hop-1stream")
	b.ReportMetric(h2b1.gbps, "Gbit/s-b-2hops-1stream")
	b.ReportMetric(b1.gbps/vethB1.gbps, "ratio-b-1stream")
	b.ReportMetric(rtt1-vethRTT, "ms-added-rtt")
	for _, r := range refs {
		if r.why == "" {
			b.ReportMetric(b1.gbps/r.b1.gbps, "x-"+r.name+"-b-1stream")
			b.ReportMetric(b4.gbps/r.b4.gbps, "x-"+r.name+"-b-4streams")
			b.ReportMetric(a1.gbps/r.a1.gbps, "x-"+r.name+"-a-1stream")
		}
	}
	for range b.N {
	}
}
