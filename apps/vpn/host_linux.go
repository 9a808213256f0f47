package vpn

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
)

// Linux: iproute2, iptables, sysctl; --dns and --killswitch are built.
const hostDNSAndKillswitch = true

func tunAddrCmds(dev string, addr netip.Prefix, _ netip.Addr) [][]string {
	return [][]string{
		{"ip", "addr", "add", addr.String(), "dev", dev},
		{"ip", "link", "set", "dev", dev, "mtu", strconv.Itoa(MTU), "up"},
	}
}

func tunAddrDelCmd(dev string, addr netip.Prefix) []string {
	return []string{"ip", "addr", "del", addr.String(), "dev", dev}
}

// hostRouteCmds keep a on its way out (rt) while the full tunnel is up.
func hostRouteCmds(a netip.Addr, rt routeTo) (add, del []string) {
	add = []string{"ip", "route", "add", a.String() + "/32", "dev", rt.Dev}
	if rt.Gateway != "" {
		add = []string{"ip", "route", "add", a.String() + "/32", "via", rt.Gateway, "dev", rt.Dev}
	}
	return add, append([]string{"ip", "route", "del"}, add[3:]...)
}

// tunnelRouteCmd routes p into dev (it goes with the device: no undo).
func tunnelRouteCmd(dev string, p netip.Prefix, _ netip.Addr) []string {
	return []string{"ip", "route", "add", p.String(), "dev", dev}
}

// blockIPv6Cmds make p unreachable while connected: IPv6 is not carried,
// and none leaks.
func blockIPv6Cmds(_ string, p netip.Prefix) (add, del []string) {
	return []string{"ip", "-6", "route", "add", "unreachable", p.String()}, []string{"ip", "-6", "route", "del", "unreachable", p.String()}
}

func routeGet(a netip.Addr) (routeTo, error) {
	out, err := output("ip", "-j", "route", "get", a.String())
	if err != nil {
		return routeTo{}, err
	}
	var rs []routeTo
	if err := json.Unmarshal(out, &rs); err != nil || len(rs) == 0 {
		return routeTo{}, fmt.Errorf("ip route get %s: %q", a, out)
	}
	return rs[0], nil
}
