package vpn

import (
	"fmt"
	"net/netip"
	"sync"
)

// DefaultPool is where the server takes clients' subnets from: /30s of a
// block rarely used by LANs.
var DefaultPool = netip.MustParsePrefix("10.211.0.0/16")

// subnets hands out /30s of a pool, one per client, skipping any that
// overlaps a prefix either end uses.
type subnets struct {
	pool netip.Prefix
	mu   sync.Mutex
	used map[netip.Prefix]bool
}

func newSubnets(pool netip.Prefix) (*subnets, error) {
	pool = pool.Masked()
	if !pool.Addr().Is4() || pool.Bits() > 30 {
		return nil, fmt.Errorf("subnet pool %s: want an IPv4 prefix of /30 or wider", pool)
	}
	return &subnets{pool: pool, used: map[netip.Prefix]bool{}}, nil
}

// take returns a free /30 that overlaps none of avoid — want, if it is
// one — and release gives it back.
func (s *subnets) take(want netip.Prefix, avoid []netip.Prefix) (netip.Prefix, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if want.IsValid() {
		if w := want.Masked(); w.Bits() == 30 && s.pool.Contains(w.Addr()) && !s.used[w] && !overlapsAny(w, avoid) {
			s.used[w] = true
			return w, true
		}
	}
	for a := s.pool.Addr(); s.pool.Contains(a); {
		p := netip.PrefixFrom(a, 30)
		if !s.used[p] && !overlapsAny(p, avoid) {
			s.used[p] = true
			return p, true
		}
		for range 4 {
			a = a.Next()
		}
		if !a.IsValid() {
			break
		}
	}
	return netip.Prefix{}, false
}

func (s *subnets) release(p netip.Prefix) {
	s.mu.Lock()
	delete(s.used, p)
	s.mu.Unlock()
}

func overlapsAny(p netip.Prefix, ps []netip.Prefix) bool {
	for _, q := range ps {
		if q.IsValid() && p.Overlaps(q) {
			return true
		}
	}
	return false
}

// ends are a /30's two usable addresses: the server's and the client's.
func ends(p netip.Prefix) (server, client netip.Addr) {
	server = p.Addr().Next()
	return server, server.Next()
}
