//go:build linux

package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"
)

// The reference tunnels the VPN benchmark measures beside the VPN, on the
// same paths in the same run. wireguardGo is the upstream wireguard-go the VPN benchmark measures
// beside the VPN (GSO/GRO and batching): the figure to beat, in the same
// run. It is built from the Go module proxy into a temporary directory,
// outside this module.
const wireguardGo = "golang.zx2c4.com/wireguard@v0.0.0-20260522210424-ecfc5a8d5446"

// nebula is the upstream nebula (its reference figure, 4.0 Gbit/s, is of
// 1.11 built from source), with its certificate tool.
const (
	nebula     = "github.com/slackhq/nebula/cmd/nebula@v1.11.0"
	nebulaCert = "github.com/slackhq/nebula/cmd/nebula-cert@v1.11.0"
)

// tunnelRef is one reference tunnel's figures in a run.
type tunnelRef struct {
	name    string
	pkgs    []string
	tunAddr string                         // the server's address inside it
	up      func(dir string) (stop func()) // dir holds the built commands
	why     string                         // why it was left out
	a1, a4  iperfResult
	b1, b4  iperfResult
	rtt     float64
}

// goInstall builds pkgs@version into a temporary directory, outside this
// module, or returns "" with the reason.
func goInstall(tb testing.TB, pkgs ...string) (string, string) {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command("go", append([]string{"install"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Sprintf("building %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	return dir, ""
}

// wgKey is a Curve25519 key pair, hex as the UAPI wants it.
type wgKey struct{ private, public string }

func newWGKey(tb testing.TB) wgKey {
	var sk [32]byte
	rand.Read(sk[:])
	sk[0] &= 248
	sk[31] = (sk[31] & 127) | 64
	pk, err := curve25519.X25519(sk[:], curve25519.Basepoint)
	if err != nil {
		tb.Fatal(err)
	}
	return wgKey{hex.EncodeToString(sk[:]), hex.EncodeToString(pk)}
}

// wgSet configures interface ifc through wireguard-go's UAPI socket.
func wgSet(tb testing.TB, ifc string, lines ...string) {
	tb.Helper()
	sock := filepath.Join("/var/run/wireguard", ifc+".sock")
	var c net.Conn
	until(tb, "wireguard-go's control socket "+sock, func() bool {
		var err error
		c, err = net.Dial("unix", sock)
		return err == nil
	})
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "set=1\n%s\n\n", strings.Join(lines, "\n"))
	answer, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || strings.TrimSpace(answer) != "errno=0" {
		tb.Fatalf("wireguard-go %s: %q %v", ifc, answer, err)
	}
}

// wireguardRef is a wireguard-go tunnel between client ns c (tunnel
// address 10.212.0.2) and the server ns (10.212.0.1, listening on
// 10.50.10.1), the internet host's subnet routed into it and masqueraded
// beyond the server, like the VPN's path (b). stop takes it all down.
func wireguardRef(tb testing.TB, n *vpnNet, bin, c string) (stop func()) {
	tb.Helper()
	ci, si := "wgc"+n.id, "wgs"+n.id
	ck, sk := newWGKey(tb), newWGKey(tb)
	port := freePorts(tb, 1)[0]
	cp := startCmd(tb, "ip", "netns", "exec", c, "env", "LOG_LEVEL=error", bin, "-f", ci)
	sp := startCmd(tb, "ip", "netns", "exec", n.server, "env", "LOG_LEVEL=error", bin, "-f", si)
	wgSet(tb, si, "private_key="+sk.private, fmt.Sprintf("listen_port=%d", port), "public_key="+ck.public, "allowed_ip=10.212.0.2/32")
	wgSet(tb, ci, "private_key="+ck.private, "public_key="+sk.public, fmt.Sprintf("endpoint=10.50.10.1:%d", port), "allowed_ip=0.0.0.0/0")
	for _, s := range [][]string{
		{n.server, "ip", "addr", "add", "10.212.0.1/24", "dev", si},
		{n.server, "ip", "link", "set", si, "mtu", "1420", "up"},
		{c, "ip", "addr", "add", "10.212.0.2/24", "dev", ci},
		{c, "ip", "link", "set", ci, "mtu", "1420", "up"},
		{c, "ip", "route", "add", "10.50.2.0/24", "dev", ci},
	} {
		in(tb, s[0], s[1:]...)
	}
	n.forward(tb, "10.212.0.0/24")
	return func() { n.unforward(tb, "10.212.0.0/24", cp, sp) }
}

// nebulaRef is a nebula tunnel like wireguardRef's: the server (10.213.0.1,
// lighthouse, listening on 10.50.10.1) routes the internet host's subnet
// (an unsafe route of the client) and masquerades it.
func nebulaRef(tb testing.TB, n *vpnNet, dir, c string) (stop func()) {
	tb.Helper()
	cert := filepath.Join(dir, "nebula-cert")
	pki := tb.TempDir()
	p := func(name string) string { return filepath.Join(pki, name) }
	for _, args := range [][]string{
		{"ca", "-name", "bench", "-out-crt", p("ca.crt"), "-out-key", p("ca.key")},
		{"sign", "-ca-crt", p("ca.crt"), "-ca-key", p("ca.key"), "-name", "server", "-networks", "10.213.0.1/24", "-unsafe-networks", "10.50.2.0/24", "-out-crt", p("s.crt"), "-out-key", p("s.key")},
		{"sign", "-ca-crt", p("ca.crt"), "-ca-key", p("ca.key"), "-name", "client", "-networks", "10.213.0.2/24", "-out-crt", p("c.crt"), "-out-key", p("c.key")},
	} {
		if out, err := exec.Command(cert, args...).CombinedOutput(); err != nil {
			tb.Fatalf("nebula-cert %s: %v\n%s", args[0], err, out)
		}
	}
	port := freePorts(tb, 1)[0]
	config := func(name, dev string, lighthouse bool, extra string) string {
		path := p(name + ".yml")
		lh := "am_lighthouse: true"
		if !lighthouse {
			lh = "am_lighthouse: false\n  hosts: [\"10.213.0.1\"]"
		}
		y := fmt.Sprintf(`pki:
  ca: %s
  cert: %s
  key: %s
static_host_map:
  "10.213.0.1": ["10.50.10.1:%d"]
lighthouse:
  %s
listen:
  host: 0.0.0.0
  port: %d
punchy:
  punch: false
tun:
  dev: %s
  mtu: 1300
%s
logging:
  level: error
firewall:
  default_local_cidr_any: true
  outbound: [{port: any, proto: any, host: any}]
  inbound: [{port: any, proto: any, host: any}]
`, p("ca.crt"), p(name+".crt"), p(name+".key"), port, lh, map[bool]int{true: port, false: 0}[lighthouse], dev, extra)
		if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
			tb.Fatal(err)
		}
		return path
	}
	ci, si := "nbc"+n.id, "nbs"+n.id
	sp := startCmd(tb, "ip", "netns", "exec", n.server, filepath.Join(dir, "nebula"), "-config", config("s", si, true, ""))
	cp := startCmd(tb, "ip", "netns", "exec", c, filepath.Join(dir, "nebula"), "-config", config("c", ci, false, "  unsafe_routes:\n    - route: 10.50.2.0/24\n      via: 10.213.0.1"))
	n.forward(tb, "10.213.0.0/24")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, err := n.curl(c); err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nebula's tunnel never came up:\nserver:\n%s\nclient:\n%s", sp.stderr.String(), cp.stderr.String())
		}
	}
	return func() { n.unforward(tb, "10.213.0.0/24", cp, sp) }
}

// forward has the server forward and masquerade a reference tunnel's
// subnet out to the internet host, as vpn-server does for its pool.
func (n *vpnNet) forward(tb testing.TB, subnet string) {
	in(tb, n.server, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	in(tb, n.server, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", subnet, "-o", "si"+n.id, "-j", "MASQUERADE")
}

// unforward undoes forward and ends the tunnel's processes.
func (n *vpnNet) unforward(tb testing.TB, subnet string, procs ...*process) {
	in(tb, n.server, "iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", subnet, "-o", "si"+n.id, "-j", "MASQUERADE")
	in(tb, n.server, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	for _, p := range procs {
		p.cmd.Process.Kill()
		<-p.done
	}
}
