package hypervisor_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/hypervisor"
	"github.com/skyfleet/skywire/internal/testnet"
	"github.com/skyfleet/skywire/svc/suite"
)

// runLinks runs a hypervisor's links on a dmsg client of key sk until the
// returned stop is called.
func runLinks(t *testing.T, n *testnet.Network, sk cipher.SecKey) (*hypervisor.Links, func()) {
	t.Helper()
	dc, err := dmsg.NewClient(dmsg.ClientConfig{SK: sk, Discovery: n.Suite.URL(suite.DmsgDiscovery)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dmsgDone := make(chan error, 1)
	go func() { dmsgDone <- dc.Run(ctx) }()
	select {
	case <-dc.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the hypervisor's dmsg client is not ready")
	}
	ln, err := dc.Listen(dmsg.PortHypervisor)
	if err != nil {
		t.Fatal(err)
	}
	l := hypervisor.NewLinks(nil, nil)
	served := make(chan error, 1)
	go func() { served <- l.Serve(ctx, ln) }()
	return l, func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
		<-dmsgDone
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Visors that list the hypervisor's key link to it over dmsg and answer
// their whole admin API (calls and streams) through it; one that does not
// list it never appears; after the hypervisor restarts they link again by
// themselves.
func TestLinks(t *testing.T) {
	hpk, hsk := cipher.GenerateKeyPair()
	dir, err := os.MkdirTemp("", "hv")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	n, err := testnet.Start(context.Background(), testnet.Config{Dir: dir, Visors: 3,
		Hypervisors: func(i int, _ []cipher.PubKey) []cipher.PubKey {
			if i == 2 {
				return nil
			}
			return []cipher.PubKey{hpk}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	want := []cipher.PubKey{n.Nodes[0].PK(), n.Nodes[1].PK()}
	slices.SortFunc(want, func(a, b cipher.PubKey) int {
		if a.Less(b) {
			return -1
		}
		return 1
	})
	l, stop := runLinks(t, n, hsk)
	waitFor(t, "visors 0 and 1 linked", func() bool { return slices.Equal(l.Visors(), want) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, pk := range want {
		info, err := admin.Call(ctx, l.Client(pk), admin.GetInfo, admin.Empty{})
		if err != nil || info.PK != pk {
			t.Fatalf("info over the link of %s: %+v %v", pk.Short(), info, err)
		}
	}
	got := errors.New("got one")
	err = admin.Follow(ctx, l.Client(want[0]), admin.Events, admin.Empty{}, func(ev admin.Event) error {
		if ev.Kind == admin.EventRoutes {
			return got
		}
		return nil
	})
	if !errors.Is(err, got) {
		t.Fatalf("events over the link: %v", err)
	}
	if l.Client(n.Nodes[2].PK()) != nil {
		t.Fatal("a visor that does not list the hypervisor linked to it")
	}
	stop()
	l, stop = runLinks(t, n, hsk)
	defer stop()
	waitFor(t, "visors 0 and 1 linked again", func() bool { return slices.Equal(l.Visors(), want) })
	if _, err := admin.Call(ctx, l.Client(want[1]), admin.GetInfo, admin.Empty{}); err != nil {
		t.Fatalf("info after the hypervisor restarted: %v", err)
	}
}
