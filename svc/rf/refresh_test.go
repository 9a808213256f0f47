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
	// refreshed waits until a refresh has started and ended.
	refreshed := func() {
		srv.mu.Lock()
		before := srv.fetched
		srv.mu.Unlock()
		for deadline := time.Now().Add(10 * time.Second); ; {
			srv.graph(ctx)
			srv.wg.Wait()
			srv.mu.Lock()
			done := srv.fetched != before
			srv.mu.Unlock()
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no refresh")
			}
			time.Sleep(time.Millisecond)
		}
	}
	for range 3 { // refreshes of the same entries
		refreshed()
	}
	srv.mu.Lock()
	checks := srv.checks
	srv.mu.Unlock()
	if checks != n {
		t.Fatalf("%d signature checks for %d entries over 4 refreshes, want %d", checks, n, n)
	}

	stall.Store(true)
	for deadline := time.Now().Add(10 * time.Second); ; { // start a refresh that stalls
		srv.graph(ctx)
		srv.mu.Lock()
		started := srv.refreshing
		srv.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no refresh started")
		}
		time.Sleep(time.Millisecond)
	}
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

// BenchmarkManyEntries: 20,000 transports in the discovery. It reports a
// refresh that verifies every entry (the first, and what every refresh cost
// before entries were verified once), a refresh of known entries, and a
// path request while refreshes run.
func BenchmarkManyEntries(b *testing.B) {
	const n = 20000
	disc := tpdisc.NewServer(store.NewMemory(4*n), nil)
	tpd := httptest.NewServer(disc)
	defer tpd.Close()
	hub, hsk := cipher.GenerateKeyPair()
	pks := []cipher.PubKey{hub}
	reg := tpdisc.NewClient(tpd.URL, hsk)
	defer reg.Close()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				apk, ask := cipher.GenerateKeyPair()
				bpk, bsk := cipher.GenerateKeyPair()
				e := tpdisc.NewEntry(apk, bpk, "stcp")
				se := &tpdisc.SignedEntry{Entry: e}
				se.Sigs[e.EdgeIndex(apk)], _ = e.Sign(ask)
				se.Sigs[e.EdgeIndex(bpk)], _ = e.Sign(bsk)
				if err := reg.Register(context.Background(), se); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := range n - 2 {
		work <- i
	}
	close(work)
	wg.Wait()
	// A short real line among the fakes: hub – x – y.
	x, xsk := cipher.GenerateKeyPair()
	y, ysk := cipher.GenerateKeyPair()
	for _, p := range [][2]struct {
		pk cipher.PubKey
		sk cipher.SecKey
	}{{{hub, hsk}, {x, xsk}}, {{x, xsk}, {y, ysk}}} {
		e := tpdisc.NewEntry(p[0].pk, p[1].pk, "stcp")
		se := &tpdisc.SignedEntry{Entry: e}
		se.Sigs[e.EdgeIndex(p[0].pk)], _ = e.Sign(p[0].sk)
		se.Sigs[e.EdgeIndex(p[1].pk)], _ = e.Sign(p[1].sk)
		if err := reg.Register(context.Background(), se); err != nil {
			b.Fatal(err)
		}
	}
	pks = append(pks, x, y)
	srv := NewServer(tpd.URL, nil)
	defer srv.Close()
	ctx := context.Background()
	began := time.Now()
	if _, err := srv.graph(ctx); err != nil {
		b.Fatal(err)
	}
	first := time.Since(began)
	srv.mu.Lock()
	srv.every, srv.took = 0, 0 // refresh now, whatever the last one took
	srv.mu.Unlock()
	began = time.Now()
	srv.graph(ctx)
	srv.wg.Wait()
	known := time.Since(began)
	rf := httptest.NewServer(srv)
	defer rf.Close()
	c := NewClient(rf.URL)
	defer c.Close()
	b.ResetTimer()
	for range b.N {
		if _, err := c.Paths(ctx, pks[0], pks[2], 0, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(first.Seconds()*1000, "ms/first-refresh")
	b.ReportMetric(known.Seconds()*1000, "ms/known-refresh")
}
