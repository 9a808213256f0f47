package visor_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/testnet"
	"github.com/skyfleet/skywire/visor"
)

// A transport added as persistent is saved in the config and shown so;
// removing it stops keeping it (config too). The skysocks passcode set
// through the API is saved and never shown back.
func TestPersistentTransportAndPasscode(t *testing.T) {
	n := startNet(t, testnet.Config{Visors: 2,
		Apps: func(i int, _ []cipher.PubKey) []visor.AppConfig {
			return []visor.AppConfig{{App: "skysocks", Port: 3, Args: []string{"--allow-local"}}}
		}})
	c, err := n.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := n.Nodes[1].PK()
	// b may still be publishing itself in the dmsg discovery.
	var tp admin.TransportInfo
	for {
		if tp, err = admin.Call(ctx, c, admin.AddTransport, admin.AddTransportRequest{PK: b, Type: "dmsg", Persistent: true}); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !tp.Persistent {
		t.Fatalf("added as persistent, shown as %+v", tp)
	}
	saved, err := visor.LoadConfig(n.Nodes[0].ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(saved.Transport.Persistent, visor.PersistentTransport{PK: b, Type: "dmsg"}) {
		t.Fatalf("config's persistent transports: %+v", saved.Transport.Persistent)
	}
	if _, err := admin.Call(ctx, c, admin.RemoveTransport, admin.RemoveTransportRequest{ID: tp.ID}); err != nil {
		t.Fatal(err)
	}
	// (The testnet's own link to b, stcp, stays persistent.)
	if saved, err = visor.LoadConfig(n.Nodes[0].ConfigPath); err != nil || slices.Contains(saved.Transport.Persistent, visor.PersistentTransport{PK: b, Type: "dmsg"}) {
		t.Fatalf("after rm-tp, the config's persistent transports: %+v %v", saved.Transport.Persistent, err)
	}

	if _, err := admin.Call(ctx, c, admin.SetPasscode, admin.PasscodeRequest{Name: "skysocks-client", Passcode: "x"}); !admin.IsCode(err, admin.CodeBadRequest) {
		t.Fatalf("a passcode for skysocks-client: %v", err)
	}
	app, err := admin.Call(ctx, c, admin.SetPasscode, admin.PasscodeRequest{Name: "skysocks", Passcode: "open sesame"})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(app.Args, "open sesame") || !slices.Contains(app.Args, "--passcode") {
		t.Fatalf("args shown: %v", app.Args)
	}
	saved, _ = visor.LoadConfig(n.Nodes[0].ConfigPath)
	if !slices.Contains(saved.Apps[0].Args, "open sesame") {
		t.Fatalf("saved args: %v", saved.Apps[0].Args)
	}
}
