package vpn

import (
	"net"
	"net/netip"
	"strconv"
)

// macOS: ifconfig and route (BSD); --dns and --killswitch are not built
// here yet (they would be scutil and pf).
const hostDNSAndKillswitch = false

func tunAddrCmds(dev string, addr netip.Prefix, peer netip.Addr) [][]string {
	mask := net.IP(net.CIDRMask(addr.Bits(), 32)).String()
	return [][]string{{"ifconfig", dev, "inet", addr.Addr().String(), peer.String(), "netmask", mask, "mtu", strconv.Itoa(MTU), "up"}}
}

func tunAddrDelCmd(dev string, addr netip.Prefix) []string {
	return []string{"ifconfig", dev, "inet", addr.Addr().String(), "-alias"}
}

// hostRouteCmds keep a on its way out (rt) while the full tunnel is up.
func hostRouteCmds(a netip.Addr, rt routeTo) (add, del []string) {
	if rt.Gateway != "" {
		return []string{"route", "-n", "add", "-host", a.String(), rt.Gateway}, []string{"route", "-n", "delete", "-host", a.String(), rt.Gateway}
	}
	return []string{"route", "-n", "add", "-host", a.String(), "-interface", rt.Dev}, []string{"route", "-n", "delete", "-host", a.String(), "-interface", rt.Dev}
}

// tunnelRouteCmd routes p into dev (it goes with the device: no undo).
func tunnelRouteCmd(dev string, p netip.Prefix, _ netip.Addr) []string {
	return []string{"route", "-n", "add", "-net", p.String(), "-interface", dev}
}

// blockIPv6Cmds send p into the tunnel, which does not carry IPv6: none
// leaks, and the route goes with the device.
func blockIPv6Cmds(dev string, p netip.Prefix) (add, del []string) {
	return []string{"route", "-n", "add", "-inet6", "-net", p.String(), "-interface", dev}, nil
}

// routeGet reads `route -n get`: its gateway and interface lines.
func routeGet(a netip.Addr) (routeTo, error) {
	out, err := output("route", "-n", "get", a.String())
	if err != nil {
		return routeTo{}, err
	}
	return parseBSDRoute(a, out)
}
