package testnet

import (
	"context"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/skyfleet/skywire/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// shortDir is a temporary directory with a short path (unix sockets).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// A line of three visors with mixed link types routes end to end over two
// hops, through the real admin API.
func TestLineRoutesOverTwoHops(t *testing.T) {
	n, err := Start(context.Background(), Config{Dir: shortDir(t), Links: []string{"stcp", "dmsg"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	}()
	c, err := n.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := admin.Call(context.Background(), c, admin.Ping, admin.PingRequest{PK: n.Nodes[2].PK(), Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Hops) != 2 || res.Hops[0].Type != "stcp" || res.Hops[1].Type != "dmsg" || res.Hops[1].PK != n.Nodes[2].PK() {
		t.Fatalf("path %+v, want a→b over stcp, b→c over dmsg", res.Hops)
	}
	if len(res.RTTsMS) != 3 {
		t.Fatalf("%d pongs, want 3", len(res.RTTsMS))
	}
}
