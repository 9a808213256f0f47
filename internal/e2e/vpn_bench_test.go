//go:build linux

package e2e

import (
	"encoding/json"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// iperf runs iperf3 from namespace ns to addr (an iperf3 server there)
// for secs seconds with streams streams, and returns Gbit/s.
func iperf(tb testing.TB, ns, addr string, streams, secs int) float64 {
	tb.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "iperf3", "-c", addr, "-J", "-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams)).Output()
	if err != nil {
		tb.Fatalf("iperf3 to %s: %v\n%s", addr, err, out)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		tb.Fatalf("iperf3 output: %v", err)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9
}

// BenchmarkVPN measures the tunnel with iperf3, 1 and 4 streams: (a) to
// the server's tunnel address, (b) to the internet host through the
// server, each beside plain veth between the same namespaces in the same
// run (the reference: the server forwarding without the VPN).
func BenchmarkVPN(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("needs iperf3 (apt-get install iperf3)")
	}
	n := newVPNNet(b, 1)
	c := n.clients[0]
	startCmd(b, "ip", "netns", "exec", n.server, "iperf3", "-s")
	startCmd(b, "ip", "netns", "exec", n.inet, "iperf3", "-s")
	time.Sleep(300 * time.Millisecond)
	const secs = 5
	// References: plain veth to the server, and routed to the internet
	// host (forwarding on for the measure only).
	vethA1, vethA4 := iperf(b, c, "10.50.10.1", 1, secs), iperf(b, c, "10.50.10.1", 4, secs)
	in(b, n.server, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	in(b, n.inet, "ip", "route", "add", "10.50.10.0/24", "via", "10.50.2.1")
	vethB1, vethB4 := iperf(b, c, "10.50.2.2", 1, secs), iperf(b, c, "10.50.2.2", 4, secs)
	in(b, n.inet, "ip", "route", "del", "10.50.10.0/24", "via", "10.50.2.1")
	in(b, n.server, "sysctl", "-qw", "net.ipv4.ip_forward=0")

	srv := n.visor("s", n.server, vpnServerApp())
	cl := n.visor("c", c, vpnClientApp(srv.pk))
	cl.addTPType(b, srv.pk, "stcpr") // direct, as a user's best transport would be
	cl.app(b, "start", "vpn-client")
	n.untilThrough(c, time.Minute)
	a1, a4 := iperf(b, c, "10.211.0.1", 1, secs), iperf(b, c, "10.211.0.1", 4, secs)
	b1, b4 := iperf(b, c, "10.50.2.2", 1, secs), iperf(b, c, "10.50.2.2", 4, secs)
	b.Logf("(a) to the server's tunnel address: %.2f Gbit/s (1 stream), %.2f (4); plain veth %.2f, %.2f", a1, a4, vethA1, vethA4)
	b.Logf("(b) to the internet host through the server: %.2f Gbit/s (1 stream), %.2f (4); plain routing %.2f, %.2f", b1, b4, vethB1, vethB4)
	b.ReportMetric(b1, "Gbit/s-b-1stream")
	b.ReportMetric(b4, "Gbit/s-b-4streams")
	b.ReportMetric(a1, "Gbit/s-a-1stream")
	b.ReportMetric(b1/vethB1, "ratio-b-1stream")
	for range b.N {
	}
}
