package suite

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/ar"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
	"github.com/skyfleet/skywire/svc/sd"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// A flood of registrations from fresh keys (which cost nothing to make)
// fills each service up to its bound and no further: past it, new keys are
// refused with a "full" 503 that says why, while a visor registered before
// the flood goes on registering.
func TestFloodIsRefusedOnceFull(t *testing.T) {
	const bound, flood = 60, 150
	s := start(t, Config{StoreEntries: bound})
	ctx := context.Background()
	var peersMu sync.Mutex
	peers := map[cipher.PubKey]cipher.SecKey{} // a transport's other edge, by its first: registering again is the same transport
	services := []struct {
		name     string
		keys     int // store keys one registration takes
		register func(pk cipher.PubKey, sk cipher.SecKey) error
	}{
		{"dmsg discovery", 1, func(_ cipher.PubKey, sk cipher.SecKey) error {
			c := dmsgdisc.NewClient(s.URL(DmsgDiscovery), sk)
			defer c.Close()
			return c.Publish(ctx, func(e *dmsgdisc.Entry) { e.Client = &dmsgdisc.ClientInfo{} })
		}},
		{"transport discovery", 3, func(pk cipher.PubKey, sk cipher.SecKey) error {
			peersMu.Lock()
			osk, again := peers[pk]
			if !again {
				_, osk = cipher.GenerateKeyPair()
				peers[pk] = osk
			}
			peersMu.Unlock()
			se := &tpdisc.SignedEntry{Entry: tpdisc.NewEntry(pk, osk.PubKey(), "stcpr")}
			for _, k := range []cipher.SecKey{sk, osk} {
				se.Sigs[se.Entry.EdgeIndex(k.PubKey())], _ = se.Entry.Sign(k)
			}
			c := tpdisc.NewClient(s.URL(TransportDiscovery), sk)
			defer c.Close()
			return c.Register(ctx, se)
		}},
		{"service discovery", 2, func(pk cipher.PubKey, sk cipher.SecKey) error {
			c := sd.NewClient(s.URL(ServiceDiscovery), sk)
			defer c.Close()
			_, err := c.Register(ctx, sd.Entry{Type: sd.TypeProxy, PK: pk, Port: 3, Version: "1.0.0"})
			return err
		}},
		{"address resolver", 1, func(_ cipher.PubKey, sk cipher.SecKey) error {
			c := ar.NewClient(s.URL(AddressResolver), sk)
			defer c.Close()
			_, err := c.BindSTCPR(ctx, 7000, nil)
			return err
		}},
	}
	for _, svc := range services {
		t.Run(strings.ReplaceAll(svc.name, " ", "-"), func(t *testing.T) {
			early, earlySK := cipher.GenerateKeyPair()
			if err := svc.register(early, earlySK); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			ok, full := 1, 0
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < flood; i += 16 {
						err := svc.register(cipher.GenerateKeyPair())
						mu.Lock()
						switch {
						case err == nil:
							ok++
						case strings.Contains(err.Error(), "the "+svc.name+" is full") && strings.Contains(err.Error(), "503"):
							full++
						default:
							t.Errorf("a registration failed otherwise: %v", err)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if ok*svc.keys > bound || full == 0 {
				t.Fatalf("%d registered (%d store keys each) and %d refused as full; the bound is %d keys", ok, svc.keys, full, bound)
			}
			if err := svc.register(early, earlySK); err != nil {
				t.Fatalf("a visor registered before the flood, registering again: %v", err)
			}
		})
	}
}
