package vpn

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/skyfleet/skywire/internal/hostcfg"
)

// tun is a TUN device: one IP packet per Read and Write.
type tun interface {
	Read(p []byte) (int, error)
	Write(p []byte) (int, error)
	Close() error
	Name() string
}

// output runs a command and returns its standard output.
func output(args ...string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

// routeTo is how the host reaches an address: through Gateway (if any)
// on Dev.
type routeTo struct {
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
}

// configureTUN gives dev its address (its end of the /30, peer the other)
// and MTU, and brings it up.
func configureTUN(dev string, addr netip.Prefix, peer netip.Addr) error {
	for _, args := range tunAddrCmds(dev, addr, peer) {
		if err := hostcfg.Run(args); err != nil {
			return err
		}
	}
	return nil
}

// localPrefixes are the prefixes of the host's own IPv4 addresses.
func localPrefixes() []netip.Prefix {
	var out []netip.Prefix
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if p, err := netip.ParsePrefix(n.String()); err == nil && p.Addr().Is4() {
				out = append(out, p.Masked())
			}
		}
	}
	return out
}

// defaultDev is the device of the default IPv4 route.
func defaultDev() (string, error) {
	out, err := output("ip", "-j", "-4", "route", "show", "default")
	if err != nil {
		return "", err
	}
	var rs []routeTo
	if err := json.Unmarshal(out, &rs); err != nil || len(rs) == 0 || rs[0].Dev == "" {
		return "", fmt.Errorf("no default route (give --netifc)")
	}
	return rs[0].Dev, nil
}

// sysctl sets key to value, recording the old value.
func sysctl(j *hostcfg.Journal, key, value string) error {
	old, err := output("sysctl", "-n", key)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(old)) == value {
		return nil
	}
	return j.Do("sysctl "+key, []string{"sysctl", "-qw", key + "=" + value}, []string{"sysctl", "-qw", key + "=" + strings.TrimSpace(string(old))})
}

// iptables adds a rule (spec with -A or -I first), recording its removal.
func iptables(j *hostcfg.Journal, bin string, table string, spec ...string) error {
	do := append([]string{bin, "-w", "-t", table}, spec...)
	undo := append([]string{bin, "-w", "-t", table, "-D"}, spec[1:]...)
	if spec[0] == "-I" || spec[0] == "-A" {
		chain := spec[1]
		undo = append([]string{bin, "-w", "-t", table, "-D", chain}, spec[2:]...)
	}
	return j.Do(strings.Join(do, " "), do, undo)
}

// parseBSDRoute reads `route -n get a` (macOS): its gateway and interface
// lines.
func parseBSDRoute(a netip.Addr, out []byte) (routeTo, error) {
	var rt routeTo
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		switch v = strings.TrimSpace(v); {
		case !ok:
		case k == "gateway":
			rt.Gateway = v
		case k == "interface":
			rt.Dev = v
		}
	}
	if rt.Dev == "" {
		return routeTo{}, fmt.Errorf("route -n get %s: no interface in %q", a, out)
	}
	return rt, nil
}
