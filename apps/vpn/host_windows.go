package vpn

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Windows: netsh, route and PowerShell's Find-NetRoute; --dns and
// --killswitch are not built here yet (they would be netsh and the
// Windows Filtering Platform).
const hostDNSAndKillswitch = false

func tunAddrCmds(dev string, addr netip.Prefix, peer netip.Addr) [][]string {
	mask := net.IP(net.CIDRMask(addr.Bits(), 32)).String()
	return [][]string{
		{"netsh", "interface", "ipv4", "set", "address", "name=" + dev, "source=static", "address=" + addr.Addr().String(), "mask=" + mask, "gateway=none"},
		{"netsh", "interface", "ipv4", "set", "subinterface", dev, "mtu=" + strconv.Itoa(MTU), "store=active"},
	}
}

func tunAddrDelCmd(dev string, addr netip.Prefix) []string {
	return []string{"netsh", "interface", "ipv4", "delete", "address", "name=" + dev, "address=" + addr.Addr().String()}
}

// hostRouteCmds keep a on its way out (rt: Dev is the interface index)
// while the full tunnel is up.
func hostRouteCmds(a netip.Addr, rt routeTo) (add, del []string) {
	gw := rt.Gateway
	if gw == "" {
		gw = "0.0.0.0" // on the link
	}
	return []string{"route", "add", a.String(), "mask", "255.255.255.255", gw, "if", rt.Dev},
		[]string{"route", "delete", a.String(), "mask", "255.255.255.255", gw}
}

// tunnelRouteCmd routes p into dev (it goes with the adapter: no undo).
func tunnelRouteCmd(dev string, p netip.Prefix, peer netip.Addr) []string {
	return []string{"netsh", "interface", "ipv4", "add", "route", "prefix=" + p.String(), "interface=" + dev, "nexthop=" + peer.String(), "store=active"}
}

// blockIPv6Cmds send p into the tunnel, which does not carry IPv6: none
// leaks, and the route goes with the adapter.
func blockIPv6Cmds(dev string, p netip.Prefix) (add, del []string) {
	return []string{"netsh", "interface", "ipv6", "add", "route", "prefix=" + p.String(), "interface=" + dev, "store=active"}, nil
}

// routeGet asks Find-NetRoute for a's next hop and interface index.
func routeGet(a netip.Addr) (routeTo, error) {
	script := fmt.Sprintf(`$r = Find-NetRoute -RemoteIPAddress '%s' | Where-Object { $_.NextHop } | Select-Object -First 1; "$($r.NextHop) $($r.InterfaceIndex)"`, a)
	out, err := output("powershell", "-NoProfile", "-NonInteractive", "-Command", script)
	if err != nil {
		return routeTo{}, err
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return routeTo{}, fmt.Errorf("Find-NetRoute %s: %q", a, out)
	}
	rt := routeTo{Gateway: f[0], Dev: f[1]}
	if rt.Gateway == "0.0.0.0" {
		rt.Gateway = ""
	}
	return rt, nil
}
