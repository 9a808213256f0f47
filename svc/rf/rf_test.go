package rf

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/store"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

type edge struct {
	a, b int
	typ  string
}

// network registers transports between n fresh keys in a real transport
// discovery and returns a route finder over it.
func network(t *testing.T, n int, edges []edge) ([]cipher.PubKey, *Client) {
	t.Helper()
	tpd := httptest.NewServer(tpdisc.NewServer(store.NewMemory(1000), nil))
	t.Cleanup(tpd.Close)
	pks := make([]cipher.PubKey, n)
	sks := make([]cipher.SecKey, n)
	for i := range pks {
		pks[i], sks[i] = cipher.GenerateKeyPair()
	}
	reg := tpdisc.NewClient(tpd.URL, sks[0])
	defer reg.Close()
	for _, e := range edges {
		entry := tpdisc.NewEntry(pks[e.a], pks[e.b], e.typ)
		se := &tpdisc.SignedEntry{Entry: entry}
		for _, i := range []int{e.a, e.b} {
			sig, _ := entry.Sign(sks[i])
			se.Sigs[entry.EdgeIndex(pks[i])] = sig
		}
		if err := reg.Register(context.Background(), se); err != nil {
			t.Fatal(err)
		}
	}
	srv := NewServer(tpd.URL, nil)
	t.Cleanup(srv.Close)
	rf := httptest.NewServer(srv)
	t.Cleanup(rf.Close)
	c := NewClient(rf.URL)
	t.Cleanup(c.Close)
	return pks, c
}

func hopsOf(pks []cipher.PubKey, p []Hop) []int {
	var out []int
	for _, h := range p {
		for i, pk := range pks {
			if pk == h.PK {
				out = append(out, i)
			}
		}
	}
	return out
}

func TestPaths(t *testing.T) {
	//   0 ─ 1 ─ 2 ─ 3
	//    \─ 4 ─────/      and a direct 0 ─ 3 over dmsg
	pks, c := network(t, 5, []edge{{0, 1, "stcp"}, {1, 2, "stcpr"}, {2, 3, "stcp"}, {0, 4, "sudph"}, {4, 3, "stcp"}, {0, 3, "dmsg"}})
	ctx := context.Background()

	paths, err := c.Paths(ctx, pks[0], pks[3], 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]int{{3}, {4, 3}, {1, 2, 3}}
	if len(paths) != 3 {
		t.Fatalf("%d paths, want 3", len(paths))
	}
	for i, p := range paths {
		if got := hopsOf(pks, p); !equal(got, want[i]) {
			t.Fatalf("path %d is %v, want %v", i, got, want[i])
		}
	}
	if paths[0][0].Type != "dmsg" || paths[1][0].Type != "sudph" || paths[1][1].Type != "stcp" {
		t.Fatalf("types: %+v %+v", paths[0], paths[1])
	}

	// min_hops skips the short ones.
	paths, _ = c.Paths(ctx, pks[0], pks[3], 3, 3)
	if len(paths) != 1 || !equal(hopsOf(pks, paths[0]), []int{1, 2, 3}) {
		t.Fatalf("min 3 hops: %+v", paths)
	}
	if _, err := c.Paths(ctx, pks[0], pks[3], 4, 3); !errors.Is(err, ErrNoPath) {
		t.Fatalf("min 4 hops: %v", err)
	}
	nobody, _ := cipher.GenerateKeyPair()
	if _, err := c.Paths(ctx, pks[0], nobody, 0, 3); !errors.Is(err, ErrNoPath) {
		t.Fatalf("unknown destination: %v", err)
	}
}

func TestPreferredType(t *testing.T) {
	pks, c := network(t, 2, []edge{{0, 1, "dmsg"}, {0, 1, "stcpr"}})
	paths, err := c.Paths(context.Background(), pks[0], pks[1], 0, 1)
	if err != nil || paths[0][0].Type != "stcpr" {
		t.Fatalf("%+v %v", paths, err)
	}
}

func TestPathsAreSimple(t *testing.T) {
	// A dense graph: every path found visits each visor at most once.
	var edges []edge
	for i := 0; i < 7; i++ {
		for j := i + 1; j < 7; j++ {
			edges = append(edges, edge{i, j, "stcp"})
		}
	}
	pks, c := network(t, 7, edges)
	paths, err := c.Paths(context.Background(), pks[0], pks[6], 2, 8)
	if err != nil || len(paths) != 8 {
		t.Fatalf("%d paths, %v", len(paths), err)
	}
	for _, p := range paths {
		seen := map[cipher.PubKey]bool{pks[0]: true}
		for _, h := range p {
			if seen[h.PK] {
				t.Fatalf("path revisits a visor: %v", hopsOf(pks, p))
			}
			seen[h.PK] = true
		}
		if len(p) < 2 || p[len(p)-1].PK != pks[6] {
			t.Fatalf("bad path %v", hopsOf(pks, p))
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
