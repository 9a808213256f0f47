package sd

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/store"
)

func service(t testing.TB, ttl time.Duration) (*Server, string) {
	t.Helper()
	srv := NewServer(store.NewMemory(1<<20), nil)
	srv.TTL = ttl
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, hs.URL
}

// post sends a signed entry as it is, and returns the status.
func post(t *testing.T, base string, se *SignedEntry) int {
	t.Helper()
	b, _ := json.Marshal(se)
	resp, err := http.Post(base+"/v1/services", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Entries are listed once registered, verified by the reader; forged,
// stale, replayed and malformed ones are refused; only the key deletes its
// entry; entries not registered again expire.
func TestServiceDiscovery(t *testing.T) {
	_, base := service(t, 2*time.Second)
	ctx := context.Background()
	pk, sk := cipher.GenerateKeyPair()
	c := NewClient(base, sk)
	defer c.Close()
	vpn := Entry{Type: TypeVPN, PK: pk, Port: 44, Version: "1.0.0", Country: "DE", Label: "fast <exit>"}
	again, err := c.Register(ctx, vpn)
	if err != nil || again <= 0 || again > time.Second {
		t.Fatalf("register: again in %v, %v", again, err)
	}
	if _, err := c.Register(ctx, Entry{Type: TypeProxy, PK: pk, Port: 3, Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx, TypeVPN, "")
	if err != nil || len(list) != 1 || list[0].Entry.Label != "fast <exit>" || list[0].Entry.Country != "DE" {
		t.Fatalf("vpn list: %+v %v", list, err)
	}
	if all, _ := c.List(ctx, "", ""); len(all) != 2 {
		t.Fatalf("every type: %d entries", len(all))
	}
	if none, _ := c.List(ctx, TypeVPN, "fr"); len(none) != 0 {
		t.Fatalf("country filter: %+v", none)
	}

	// Forged: another key's entry, or an entry changed after signing.
	_, other := cipher.GenerateKeyPair()
	if _, err := vpn.Sign(other, time.Now()); err == nil {
		t.Fatal("signed an entry for another key")
	}
	se, _ := vpn.Sign(sk, time.Now())
	changed := *se
	changed.Entry.Port = 45
	if code := post(t, base, &changed); code != http.StatusBadRequest {
		t.Fatalf("a changed entry: %d", code)
	}
	// Replayed: the same registration twice, or an older one after it.
	if code := post(t, base, se); code != http.StatusOK {
		t.Fatalf("a fresh entry: %d", code)
	}
	if code := post(t, base, se); code != http.StatusConflict {
		t.Fatalf("a replayed entry: %d", code)
	}
	older, _ := vpn.Sign(sk, time.Now().Add(-10*time.Second))
	if code := post(t, base, older); code != http.StatusConflict {
		t.Fatalf("an older entry: %d", code)
	}
	// Stale: signed too long ago (or ahead).
	for _, at := range []time.Time{time.Now().Add(-2 * MaxClockSkew), time.Now().Add(2 * MaxClockSkew)} {
		stale, _ := Entry{Type: TypeVPN, PK: pk, Port: 50, Version: "1"}.Sign(sk, at)
		if code := post(t, base, stale); code != http.StatusBadRequest {
			t.Fatalf("an entry of %v: %d", at, code)
		}
	}
	// Malformed.
	for _, e := range []Entry{
		{Type: "chat", PK: pk, Port: 1, Version: "1"},
		{Type: TypeVPN, PK: pk, Port: 0, Version: "1"},
		{Type: TypeVisor, PK: pk, Port: 5, Version: "1"},
		{Type: TypeVPN, PK: pk, Port: 44, Version: ""},
		{Type: TypeVPN, PK: pk, Port: 44, Version: "1", Country: "germany"},
		{Type: TypeVPN, PK: pk, Port: 44, Version: "1", Label: "line\nbreak"},
		{Type: TypeVPN, PK: pk, Port: 44, Version: "1", Label: strings.Repeat("x", 65)},
	} {
		if _, err := e.Sign(sk, time.Now()); err == nil {
			t.Fatalf("signed a malformed entry %+v", e)
		}
	}

	// Only the key deletes its entry.
	req, _ := http.NewRequest(http.MethodDelete, base+"/v1/services/vpn/"+pk.Hex()+"/44", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an unsigned delete: %v %v", resp, err)
	}
	if err := c.Deregister(ctx, TypeProxy, 3); err != nil {
		t.Fatal(err)
	}
	if list, _ := c.List(ctx, TypeProxy, ""); len(list) != 0 {
		t.Fatalf("after deregistering: %+v", list)
	}

	// Not registered again: gone within the TTL.
	deadline := time.Now().Add(3 * time.Second)
	for {
		list, _ := c.List(ctx, TypeVPN, "")
		if len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still listed after its TTL: %+v", list)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Many visors register at once; one key cannot hold more than MaxPerKey
// entries.
func TestManyRegistrations(t *testing.T) {
	_, base := service(t, time.Minute)
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pk, sk := cipher.GenerateKeyPair()
			c := NewClient(base, sk)
			defer c.Close()
			if _, err := c.Register(ctx, Entry{Type: TypeVPN, PK: pk, Port: 44, Version: "1"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	pk, sk := cipher.GenerateKeyPair()
	c := NewClient(base, sk)
	defer c.Close()
	if list, err := c.List(ctx, TypeVPN, ""); err != nil || len(list) != 50 {
		t.Fatalf("%d listed, %v", len(list), err)
	}
	for port := range uint16(MaxPerKey) {
		if _, err := c.Register(ctx, Entry{Type: TypeProxy, PK: pk, Port: port + 1, Version: "1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Register(ctx, Entry{Type: TypeProxy, PK: pk, Port: 999, Version: "1"}); err == nil {
		t.Fatal("one key registered more than MaxPerKey entries")
	}
	if _, err := c.Register(ctx, Entry{Type: TypeProxy, PK: pk, Port: 1, Version: "1"}); err != nil {
		t.Fatalf("refreshing an entry at the cap: %v", err)
	}
}
