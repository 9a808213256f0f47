package dmsgdisc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
)

func newService(t *testing.T) (*Server, string) {
	t.Helper()
	srv := NewServer(store.NewMemory(1000), nil)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, hs.URL
}

func TestPublishAndRead(t *testing.T) {
	srv, url := newService(t)
	ctx := context.Background()
	spk, ssk := cipher.GenerateKeyPair()
	srv.TrustServers(spk)
	cpk, csk := cipher.GenerateKeyPair()
	server := NewClient(url, ssk)
	client := NewClient(url, csk)
	defer server.Close()
	defer client.Close()

	if err := server.Publish(ctx, func(e *Entry) { e.Server = &ServerInfo{Address: "127.0.0.1:8081", AvailableSessions: 100} }); err != nil {
		t.Fatal(err)
	}
	if err := client.Publish(ctx, func(e *Entry) { e.Client = &ClientInfo{DelegatedServers: []cipher.PubKey{spk}} }); err != nil {
		t.Fatal(err)
	}
	got, err := server.Entry(ctx, cpk)
	if err != nil || got.Client == nil || got.Client.DelegatedServers[0] != spk {
		t.Fatalf("client entry: %+v %v", got, err)
	}
	servers, err := client.Servers(ctx)
	if err != nil || len(servers) != 1 || servers[0].PK != spk || servers[0].Server.Address != "127.0.0.1:8081" {
		t.Fatalf("servers: %+v %v", servers, err)
	}

	// Republishing replaces; the sequence grows.
	if err := client.Publish(ctx, func(e *Entry) { e.Client = &ClientInfo{} }); err != nil {
		t.Fatal(err)
	}
	again, _ := server.Entry(ctx, cpk)
	if len(again.Client.DelegatedServers) != 0 || again.Sequence <= got.Sequence {
		t.Fatalf("republish: %+v", again)
	}

	// A restarted client whose stored entry is ahead of its clock (its
	// sequence memory is gone) continues above the stored sequence.
	ahead := &Entry{PK: cpk, Sequence: 1 << 62, Timestamp: time.Now().UnixMilli(), Client: &ClientInfo{}}
	se, _ := Sign(ahead, csk)
	if err := client.c.Call(ctx, "POST", "/v1/entries", false, se, nil); err != nil {
		t.Fatal(err)
	}
	restarted := NewClient(url, csk)
	if err := restarted.Publish(ctx, func(e *Entry) { e.Client = &ClientInfo{} }); err != nil {
		t.Fatalf("publish after a sequence conflict: %v", err)
	}
	if e, _ := server.Entry(ctx, cpk); e.Sequence != 1<<62+1 {
		t.Fatalf("sequence after recovery: %d", e.Sequence)
	}

	if _, err := client.Entry(ctx, spk); err != nil {
		t.Fatal(err)
	}
	nobody, _ := cipher.GenerateKeyPair()
	if _, err := client.Entry(ctx, nobody); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}

	// Only the owner deletes.
	_, osk := cipher.GenerateKeyPair()
	err = NewClient(url, osk).c.Call(ctx, "DELETE", "/v1/entries/"+cpk.Hex(), true, nil, nil)
	var se2 *httpauth.StatusError
	if !errors.As(err, &se2) || se2.Status != http.StatusForbidden {
		t.Fatalf("foreign delete: %v", err)
	}
	if err := client.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Entry(ctx, cpk); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func post(t *testing.T, url string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(url+"/v1/entries", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Error
}

func TestRejects(t *testing.T) {
	srv, url := newService(t)
	pk, sk := cipher.GenerateKeyPair()
	srv.TrustServers(pk)
	_, other := cipher.GenerateKeyPair()
	fresh := func() *Entry {
		return &Entry{PK: pk, Sequence: 5, Timestamp: time.Now().UnixMilli(), Client: &ClientInfo{}}
	}
	encode := func(se SignedEntry) []byte { return se.encode() }

	good, _ := Sign(fresh(), sk)
	if code, msg := post(t, url, encode(good)); code != 200 {
		t.Fatalf("good entry: %d %s", code, msg)
	}
	tests := []struct {
		name string
		body func() []byte
		code int
		msg  string
	}{
		{"replayed (same sequence)", func() []byte { return encode(good) }, 409, "sequence must increase"},
		{"lower sequence", func() []byte {
			e := fresh()
			e.Sequence = 4
			se, _ := Sign(e, sk)
			return encode(se)
		}, 409, "sequence must increase"},
		{"stale timestamp", func() []byte {
			e := fresh()
			e.Sequence, e.Timestamp = 9, time.Now().Add(-10*time.Minute).UnixMilli()
			se, _ := Sign(e, sk)
			return encode(se)
		}, 400, "check the clock"},
		{"signed by someone else", func() []byte {
			e := fresh()
			e.Sequence = 10
			raw, _ := json.Marshal(e)
			sig, _ := cipher.SignHash(other, digest(raw))
			return encode(SignedEntry{Entry: raw, Sig: sig})
		}, 400, "signature does not match"},
		{"tampered after signing", func() []byte {
			e := fresh()
			e.Sequence = 11
			se, _ := Sign(e, sk)
			se.Entry = bytes.Replace(se.Entry, []byte(`"sequence":11`), []byte(`"sequence":12`), 1)
			return encode(se)
		}, 400, "signature does not match"},
		{"neither client nor server", func() []byte {
			e := fresh()
			e.Sequence, e.Client = 13, nil
			se, _ := Sign(e, sk)
			return encode(se)
		}, 400, "neither client nor server"},
		{"bad server address", func() []byte {
			e := fresh()
			e.Sequence, e.Client, e.Server = 14, nil, &ServerInfo{Address: "nowhere", AvailableSessions: 1}
			se, _ := Sign(e, sk)
			return encode(se)
		}, 400, "server address"},
		{"unknown field", func() []byte { return []byte(`{"entry":{},"extra":1}`) }, 400, "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, msg := post(t, url, tt.body())
			if code != tt.code || !strings.Contains(msg, tt.msg) {
				t.Fatalf("got %d %q, want %d %q", code, msg, tt.code, tt.msg)
			}
		})
	}
}

// Entries from other implementations may format JSON differently: the
// service must hand back exactly the signed bytes.
func TestForeignFormattingSurvives(t *testing.T) {
	_, url := newService(t)
	pk, sk := cipher.GenerateKeyPair()
	raw := []byte(`{ "pk" : "` + pk.Hex() + `", "sequence": 1, "timestamp": ` +
		strconv.FormatInt(time.Now().UnixMilli(), 10) + `, "client": {"delegated_servers": []} }`)
	sig, _ := cipher.SignHash(sk, digest(raw))
	if code, msg := post(t, url, SignedEntry{Entry: raw, Sig: sig}.encode()); code != 200 {
		t.Fatalf("%d %s", code, msg)
	}
	_, rsk := cipher.GenerateKeyPair()
	if _, err := NewClient(url, rsk).Entry(context.Background(), pk); err != nil {
		t.Fatalf("reading a foreign-formatted entry: %v", err)
	}
}

// Server entries are also indexed, so listing servers skips clients.
func TestServerIndex(t *testing.T) {
	mem := store.NewMemory(100)
	srv := NewServer(mem, nil)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	pk, sk := cipher.GenerateKeyPair()
	srv.TrustServers(pk)
	c := NewClient(hs.URL, sk)
	if err := c.Publish(context.Background(), func(e *Entry) { e.Server = &ServerInfo{Address: "127.0.0.1:1", AvailableSessions: 1} }); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := mem.Get(ctx, entryPrefix+pk.Hex()); err != nil {
		t.Fatal(err)
	}
	var n int
	mem.Scan(ctx, "", func(string, []byte) bool { n++; return true })
	if n != 2 {
		t.Fatalf("%d keys, want entry and server index", n)
	}
}

// Anyone may publish client entries, but only trusted keys server entries:
// 520 self-signed server entries (enough to fill a page of the 512 lowest
// keys) cannot hide the network's real server.
func TestServerEntriesOnlyFromTrustedKeys(t *testing.T) {
	srv, url := newService(t)
	ctx := context.Background()
	rpk, rsk := cipher.GenerateKeyPair()
	srv.TrustServers(rpk)
	if err := NewClient(url, rsk).Publish(ctx, func(e *Entry) { e.Server = &ServerInfo{Address: "127.0.0.1:8081", AvailableSessions: 10} }); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for range 520 {
		_, sk := cipher.GenerateKeyPair()
		err := NewClient(url, sk).Publish(ctx, func(e *Entry) { e.Server = &ServerInfo{Address: "127.0.0.1:1", AvailableSessions: 1 << 20} })
		if err != nil && strings.Contains(err.Error(), "not a trusted dmsg server") {
			refused++
		}
	}
	if refused != 520 {
		t.Fatalf("%d of 520 untrusted server entries refused", refused)
	}
	_, csk := cipher.GenerateKeyPair()
	servers, err := NewClient(url, csk).Servers(ctx)
	if err != nil || len(servers) != 1 || servers[0].PK != rpk {
		t.Fatalf("servers listed: %d, %v", len(servers), err)
	}
}

// Signed entries as the network sends them never panic, and an opened
// entry is within its limits.
func FuzzSignedEntry(f *testing.F) {
	pk, sk := cipher.GenerateKeyPair()
	se, _ := Sign(&Entry{PK: pk, Sequence: 1, Timestamp: 1, Server: &ServerInfo{Address: "127.0.0.1:1", AvailableSessions: 1}}, sk)
	f.Add(se.encode())
	se, _ = Sign(&Entry{PK: pk, Sequence: 2, Timestamp: 1, Client: &ClientInfo{DelegatedServers: []cipher.PubKey{pk}}}, sk)
	f.Add(se.encode())
	f.Add([]byte(`{"entry":{"pk":"00"},"sig":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var se SignedEntry
		if json.Unmarshal(b, &se) != nil {
			return
		}
		e, err := se.Open()
		if err != nil {
			return
		}
		if len(se.Entry) > maxEntryBytes || e.Client != nil && len(e.Client.DelegatedServers) > MaxDelegated || e.Client == nil && e.Server == nil {
			t.Fatalf("opened an entry past its limits: %s", b)
		}
	})
}
