package vpn

import (
	"net/netip"
	"sync"
	"testing"
)

// Subnets skip what either end uses, are never handed out twice (many
// clients at once), and come back when released.
func TestSubnets(t *testing.T) {
	s, err := newSubnets(netip.MustParsePrefix("10.9.0.0/28"))
	if err != nil {
		t.Fatal(err)
	}
	p, ok := s.take(netip.Prefix{}, []netip.Prefix{netip.MustParsePrefix("10.9.0.1/32"), netip.MustParsePrefix("192.168.1.0/24")})
	if !ok || p != netip.MustParsePrefix("10.9.0.4/30") {
		t.Fatalf("first: %v %v", p, ok)
	}
	srv, cl := ends(p)
	if srv != netip.MustParseAddr("10.9.0.5") || cl != netip.MustParseAddr("10.9.0.6") {
		t.Fatalf("ends: %v %v", srv, cl)
	}
	var mu sync.Mutex
	got := map[netip.Prefix]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if q, ok := s.take(netip.Prefix{}, nil); ok {
				mu.Lock()
				if got[q] {
					t.Errorf("%v handed out twice", q)
				}
				got[q] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != 3 { // 10.9.0.0, .8, .12; .4 is taken
		t.Fatalf("handed out %v", got)
	}
	if _, ok := s.take(netip.Prefix{}, nil); ok {
		t.Fatal("a subnet from a full pool")
	}
	s.release(p)
	s.release(netip.MustParsePrefix("10.9.0.8/30"))
	// A reconnecting client gets its previous subnet back when it is free.
	if q, ok := s.take(netip.MustParsePrefix("10.9.0.9/30"), nil); !ok || q != netip.MustParsePrefix("10.9.0.8/30") {
		t.Fatalf("the previous subnet: %v %v", q, ok)
	}
	if q, ok := s.take(netip.MustParsePrefix("10.9.0.9/30"), nil); !ok || q != p {
		t.Fatalf("a previous subnet taken meanwhile: %v %v", q, ok)
	}
	if _, err := newSubnets(netip.MustParsePrefix("fd00::/64")); err == nil {
		t.Fatal("an IPv6 pool")
	}
}

// macOS's `route -n get` is read for the way out, with or without a
// gateway.
func TestParseBSDRoute(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.7")
	out := []byte("   route to: 192.0.2.7\ndestination: default\n       mask: default\n    gateway: 192.168.1.1\n  interface: en0\n      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING>\n")
	if rt, err := parseBSDRoute(a, out); err != nil || rt != (routeTo{Gateway: "192.168.1.1", Dev: "en0"}) {
		t.Fatalf("via a gateway: %+v %v", rt, err)
	}
	if rt, err := parseBSDRoute(a, []byte("   route to: 192.0.2.7\n  interface: en1\n")); err != nil || rt != (routeTo{Dev: "en1"}) {
		t.Fatalf("on the link: %+v %v", rt, err)
	}
	if _, err := parseBSDRoute(a, []byte("route: writing to routing socket: not in table\n")); err == nil {
		t.Fatal("no route read as one")
	}
}
