package visor_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/testnet"
	"github.com/skyfleet/skywire/visor"
)

// Reloads (a changing config file) at the same time as status calls, pings
// over the route, labelled add-tps, app and persistent changes: no call
// fails for a reason other than the reload's own, and the last file is what
// the visor ends up with (run with -race: no data race among them).
func TestReloadWhileBusy(t *testing.T) {
	n := startNet(t, testnet.Config{Visors: 2})
	c, err := n.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	node := n.Nodes[0]
	peer := n.Nodes[1].PK()
	var fileMu sync.Mutex // one writer of the config file at a time (the visor saves it too)
	edit := func(i int) error {
		fileMu.Lock()
		defer fileMu.Unlock()
		cfg, err := visor.LoadConfig(node.ConfigPath)
		if err != nil {
			return err
		}
		cfg.LogLevel = []string{"debug", "info"}[i%2]
		pk, _ := cipher.GenerateKeyPair()
		cfg.STCP.PKTable[pk] = fmt.Sprintf("127.0.0.1:%d", 1000+i)
		cfg.Routing.MinHops = i % 2
		return cfg.Save(node.ConfigPath)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	run := func(what string, times int, fn func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range times {
				if err := fn(i); err != nil {
					errs <- fmt.Errorf("%s %d: %w", what, i, err)
				}
			}
		}()
	}
	run("reload", 20, func(i int) error {
		if err := edit(i); err != nil {
			return err
		}
		fileMu.Lock()
		defer fileMu.Unlock()
		_, err := admin.Call(ctx, c, admin.Reload, admin.Empty{})
		return err
	})
	run("status", 30, func(int) error { _, err := admin.Call(ctx, c, admin.GetStatus, admin.Empty{}); return err })
	run("ping", 10, func(int) error {
		_, err := admin.Call(ctx, c, admin.Ping, admin.PingRequest{PK: peer, Count: 1})
		return err
	})
	run("add-tp", 10, func(i int) error {
		fileMu.Lock()
		defer fileMu.Unlock()
		_, err := admin.Call(ctx, c, admin.AddTransport, admin.AddTransportRequest{PK: peer, Type: "stcp", Label: fmt.Sprintf("peer %d", i), Persistent: i%2 == 0})
		return err
	})
	run("metrics", 10, func(int) error {
		st, err := admin.Call(ctx, c, admin.GetStatus, admin.Empty{})
		if err == nil && len(st.Transports) == 0 {
			err = fmt.Errorf("the transport went away")
		}
		return err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A last reload of a known file: the visor runs what it says.
	if err := edit(20); err != nil { // min hops 1 (19, the last in the loop) → 0
		t.Fatal(err)
	}
	res, err := admin.Call(ctx, c, admin.Reload, admin.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	// (testnet's visors log at a level of their own: log_level waits for a
	// restart.)
	if !strings.Contains(strings.Join(res.Applied, "\n"), "routing.min_hops 1 → 0") || !strings.Contains(strings.Join(res.NeedRestart, "\n"), "log_level") {
		t.Fatalf("the last reload applied %v, left %v", res.Applied, res.NeedRestart)
	}
}
