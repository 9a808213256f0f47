package visor

import (
	"context"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"time"
)

// bypass lists the IP addresses the visor's own traffic goes to: its
// transports' peers, its dmsg servers, its services and its hypervisors'
// direct addresses. A VPN client keeps
// them outside its tunnel, or the visor would carry the tunnel inside
// itself.
func (v *Visor) bypass() []netip.Addr {
	var out []netip.Addr
	add := func(hostport string) {
		host, _, err := net.SplitHostPort(hostport)
		if err != nil {
			host = hostport
		}
		if a, err := netip.ParseAddr(host); err == nil {
			out = append(out, a.Unmap())
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		ips, _ := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		for _, a := range ips {
			out = append(out, a.Unmap())
		}
	}
	for _, tp := range v.tpm.Transports() {
		switch a := tp.RemoteAddr().(type) {
		case *net.TCPAddr:
			add(a.String())
		case *net.UDPAddr:
			add(a.String())
		default:
			if a != nil {
				if ap, err := netip.ParseAddrPort(a.String()); err == nil {
					out = append(out, ap.Addr().Unmap())
				}
			}
		}
	}
	if v.dmsg != nil {
		for _, a := range v.dmsg.ServerAddrs() {
			add(a)
		}
	}
	c := v.cfg
	for _, s := range []string{c.Dmsg.Discovery, c.Transport.Discovery, c.Transport.AddressResolver, c.Routing.RouteFinder, c.ServiceDiscovery} {
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			add(u.Host)
		}
	}
	v.cfgMu.Lock() // a reload replaces the table
	table := c.STCP.PKTable
	v.cfgMu.Unlock()
	for _, a := range table {
		add(a)
	}
	for _, h := range v.hypervisors() { // direct links: the hypervisor keeps the visor while a tunnel is down
		if h.Address != "" {
			add(h.Address)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.DeleteFunc(slices.Compact(out), func(a netip.Addr) bool { return a.IsLoopback() || a.IsUnspecified() })
}
