package visor_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/internal/testnet"
)

// startNet runs a test network in a short temporary directory (unix
// socket paths are short) until the test ends.
func startNet(t *testing.T, cfg testnet.Config) *testnet.Network {
	t.Helper()
	dir, err := os.MkdirTemp("", "vt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg.Dir = dir
	n, err := testnet.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// The event stream starts with the state (the transport to the next visor
// up, the routes) and follows changes: the transport removed goes down.
func TestEventStream(t *testing.T) {
	n := startNet(t, testnet.Config{Visors: 2})
	c, err := n.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := errors.New("done")
	var up *admin.TransportInfo
	removed := false
	err = admin.Follow(ctx, c, admin.Events, admin.Empty{}, func(ev admin.Event) error {
		switch {
		case ev.Kind == admin.EventTransportUp && up == nil:
			if ev.Transport.RemotePK != n.Nodes[1].PK() {
				t.Errorf("transport up to %s", ev.Transport.RemotePK.Short())
			}
			up = ev.Transport
		case ev.Kind == admin.EventRoutes && up != nil && !removed:
			removed = true // the state is complete: change it
			if _, err := admin.Call(ctx, c, admin.RemoveTransport, admin.RemoveTransportRequest{ID: up.ID}); err != nil {
				return err
			}
		case ev.Kind == admin.EventTransportDown && removed:
			if ev.Transport.ID != up.ID {
				t.Errorf("transport %s down, want %s", ev.Transport.ID, up.ID)
			}
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("events ended with %v (transport up: %v, removed: %v)", err, up != nil, removed)
	}
}
