package rf

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/store"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// register puts n transports in a line of n+1 fresh keys into the discovery.
func register(t *testing.T, url string, n int) []cipher.PubKey {
	t.Helper()
	pks := make([]cipher.PubKey, n+1)
	sks := make([]cipher.SecKey, n+1)
	for i := range pks {
		pks[i], sks[i] = cipher.GenerateKeyPair()
	}
	reg := tpdisc.NewClient(url, sks[0])
	defer reg.Close()
	for i := range n {
		entry := tpdisc.NewEntry(pks[i], pks[i+1], "stcp")
		se := &tpdisc.SignedEntry{Entry: entry}
		for _, k := range []int{i, i + 1} {
			sig, _ := entry.Sign(sks[k])
			se.Sigs[entry.EdgeIndex(pks[k])] = sig
		}
		if err := reg.Register(context.Background(), se); err != nil {
			t.Fatal(err)
		}
	}
	return pks
}

// A refresh verifies only entries it has not seen, and runs beside the
// requests: while the discovery stalls a refresh, paths are answered from
// the last graph.
func TestRefreshVerifiesOnceAndNeverBlocks(t *testing.T) {
	disc := tpdisc.NewServer(store.NewMemory(10000), nil)
	var stall atomic.Bool
	release := make(chan struct{})
	var once sync.Once
	unstall := func() { once.Do(func() { close(release) }) }
	tpd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/transports") && stall.Load() {
			<-release
		}
		disc.ServeHTTP(w, r)
	}))
	defer tpd.Close()
	const n = 100
	pks := register(t, tpd.URL, n)
	srv := NewServer(tpd.URL, nil)
	srv.every = time.Millisecond
	defer srv.Close()
	defer unstall() // before Close waits for the refresh
	ctx := context.Background()
	if _, err := srv.graph(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 { // refreshes of the same entries
		time.Sleep(5 * time.Millisecond)
		srv.graph(ctx)
		srv.wg.Wait()
	}
	srv.mu.Lock()
	checks := srv.checks
	srv.mu.Unlock()
	if checks != n {
		t.Fatalf("%d signature checks for %d entries over 4 refreshes, want %d", checks, n, n)
	}

	stall.Store(true)
	time.Sleep(5 * time.Millisecond)
	srv.graph(ctx) // starts a refresh that stalls
	rf := httptest.NewServer(srv)
	defer rf.Close()
	c := NewClient(rf.URL)
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	paths, err := c.Paths(rctx, pks[0], pks[3], 0, 1)
	if err != nil || len(paths) != 1 || len(paths[0]) != 3 {
		t.Fatalf("a request during a stalled refresh: %v %v", paths, err)
	}
	srv.mu.Lock()
	refreshing := srv.refreshing
	srv.mu.Unlock()
	if !refreshing {
		t.Fatal("the refresh did not stall: the test proves nothing")
	}
	unstall()
}
