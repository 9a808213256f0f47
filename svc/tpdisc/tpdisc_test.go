package tpdisc

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
)

type edge struct {
	pk cipher.PubKey
	sk cipher.SecKey
}

func newEdge() edge {
	pk, sk := cipher.GenerateKeyPair()
	return edge{pk, sk}
}

// signedBy makes a's and b's entry of type typ, signed by both.
func signedBy(t *testing.T, a, b edge, typ string) *SignedEntry {
	t.Helper()
	e := NewEntry(a.pk, b.pk, typ)
	se := &SignedEntry{Entry: e}
	for _, x := range []edge{a, b} {
		sig, err := e.Sign(x.sk)
		if err != nil {
			t.Fatal(err)
		}
		se.Sigs[e.EdgeIndex(x.pk)] = sig
	}
	return se
}

func TestID(t *testing.T) {
	a, b := newEdge(), newEdge()
	if MakeID(a.pk, b.pk, "stcp") != MakeID(b.pk, a.pk, "stcp") {
		t.Fatal("the id depends on the order of the edges")
	}
	if MakeID(a.pk, b.pk, "stcp") == MakeID(a.pk, b.pk, "dmsg") {
		t.Fatal("the id does not depend on the type")
	}
	id := MakeID(a.pk, b.pk, "stcp")
	back, err := ParseID(id.String())
	if err != nil || back != id {
		t.Fatal("id text round trip")
	}
}

func service(t *testing.T) string {
	hs := httptest.NewServer(NewServer(store.NewMemory(1000), nil))
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestRegisterAndQuery(t *testing.T) {
	url := service(t)
	ctx := context.Background()
	a, b, c := newEdge(), newEdge(), newEdge()
	ca := NewClient(url, a.sk)
	defer ca.Close()

	ab := signedBy(t, a, b, "stcp")
	bc := signedBy(t, b, c, "dmsg")
	for _, se := range []*SignedEntry{ab, bc} {
		if err := ca.Register(ctx, se); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ca.Entry(ctx, ab.Entry.ID)
	if err != nil || got.Entry.Type != "stcp" {
		t.Fatalf("entry: %+v %v", got, err)
	}
	of, err := ca.ByEdge(ctx, b.pk)
	if err != nil || len(of) != 2 {
		t.Fatalf("b's transports: %d %v", len(of), err)
	}
	of, _ = ca.ByEdge(ctx, a.pk)
	if len(of) != 1 || of[0].Entry.ID != ab.Entry.ID {
		t.Fatalf("a's transports: %+v", of)
	}
	all, _ := ca.All(ctx)
	if len(all) != 2 {
		t.Fatalf("all: %d", len(all))
	}

	// Heartbeat and delete: edges only.
	if err := ca.Heartbeat(ctx, ab.Entry.ID); err != nil {
		t.Fatal(err)
	}
	cc := NewClient(url, c.sk)
	var se *httpauth.StatusError
	if err := cc.Deregister(ctx, ab.Entry.ID); !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Fatalf("delete by a non-edge: %v", err)
	}
	if err := cc.Heartbeat(ctx, ab.Entry.ID); !errors.As(err, &se) || se.Status != http.StatusForbidden {
		t.Fatalf("heartbeat by a non-edge: %v", err)
	}
	if err := NewClient(url, b.sk).Deregister(ctx, ab.Entry.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.Entry(ctx, ab.Entry.ID); !httpauth.IsNotFound(err) {
		t.Fatalf("after delete: %v", err)
	}
	if of, _ := ca.ByEdge(ctx, a.pk); len(of) != 0 {
		t.Fatalf("index kept a deleted transport: %+v", of)
	}
}

func TestRegisterRejects(t *testing.T) {
	url := service(t)
	ctx := context.Background()
	a, b, c := newEdge(), newEdge(), newEdge()
	cl := NewClient(url, a.sk)
	tests := []struct {
		name   string
		mutate func(se *SignedEntry)
		want   string
	}{
		{"one signature missing", func(se *SignedEntry) { se.Sigs[1] = cipher.Sig{} }, "signature"},
		{"signature by a third key", func(se *SignedEntry) {
			sig, _ := cipher.SignHash(c.sk, se.Entry.digest())
			se.Sigs[0] = sig
		}, "edge 0's signature"},
		{"type changed after signing", func(se *SignedEntry) {
			se.Entry.Type = "dmsg"
			se.Entry.ID = MakeID(se.Entry.Edges[0], se.Entry.Edges[1], "dmsg")
		}, "signature"},
		{"id does not match", func(se *SignedEntry) { se.Entry.ID[0] ^= 1 }, "id does not match"},
		{"edges unsorted", func(se *SignedEntry) {
			se.Entry.Edges[0], se.Entry.Edges[1] = se.Entry.Edges[1], se.Entry.Edges[0]
		}, "ascending"},
		{"stale", func(se *SignedEntry) {
			se.Entry.Timestamp = time.Now().Add(-time.Hour).UnixMilli()
			for _, x := range []edge{a, b} {
				sig, _ := se.Entry.Sign(x.sk)
				se.Sigs[se.Entry.EdgeIndex(x.pk)] = sig
			}
		}, "timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			se := signedBy(t, a, b, "stcp")
			tt.mutate(se)
			err := cl.Register(ctx, se)
			var sErr *httpauth.StatusError
			if !errors.As(err, &sErr) || sErr.Status != http.StatusBadRequest || !strings.Contains(sErr.Message, tt.want) {
				t.Fatalf("err = %v, want 400 %q", err, tt.want)
			}
		})
	}
}

// One key may be an edge of at most maxPerEdge transports; re-registering
// one it has stays allowed.
func TestEntriesPerEdgeCapped(t *testing.T) {
	srv := NewServer(store.NewMemory(1000), nil)
	srv.maxPerEdge = 5
	hs := httptest.NewServer(srv)
	defer hs.Close()
	hub := newEdge()
	c := NewClient(hs.URL, hub.sk)
	defer c.Close()
	var first *SignedEntry
	for i := range 5 {
		se := signedBy(t, hub, newEdge(), "stcp")
		if err := c.Register(context.Background(), se); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if first == nil {
			first = se
		}
	}
	err := c.Register(context.Background(), signedBy(t, hub, newEdge(), "stcp"))
	if err == nil || !strings.Contains(err.Error(), "the most one key may have") {
		t.Fatalf("past the cap: %v", err)
	}
	if err := c.Register(context.Background(), first); err != nil {
		t.Fatalf("re-registration at the cap: %v", err)
	}
}

// Signed transport entries as the network sends them never panic, and a
// verified one is well formed.
func FuzzSignedEntry(f *testing.F) {
	a, b := newEdge(), newEdge()
	e := NewEntry(a.pk, b.pk, "stcp")
	good := &SignedEntry{Entry: e}
	for _, x := range []edge{a, b} {
		good.Sigs[e.EdgeIndex(x.pk)], _ = e.Sign(x.sk)
	}
	raw, _ := json.Marshal(good)
	f.Add(raw)
	f.Add([]byte(`{"entry":{"id":"00","edges":["",""],"type":"x","timestamp":1},"sigs":["",""]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var se SignedEntry
		if json.Unmarshal(in, &se) != nil {
			return
		}
		if se.Verify() == nil && se.Entry.Check() != nil {
			t.Fatalf("verified a malformed entry: %s", in)
		}
	})
}
