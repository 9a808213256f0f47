package tpdisc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/redistest"
	"github.com/skyfleet/skywire/svc/store"
)

// BenchmarkService measures the transport discovery over HTTP on loopback,
// holding 10,000 or 100,000 transports (visor i linked to visor i+1) in
// each store: registrations (POST of a new transport signed by both edges)
// and lookups (a visor's transports, GET ?edge=), 8 clients at once, with
// their rate and p99 latency. "redis-x3" is three instances on one Redis,
// the clients spread over them. Memory reports the heap each transport
// takes.
func BenchmarkService(b *testing.B) {
	for _, entries := range []int{10_000, 100_000} {
		pks, sks := make([]cipher.PubKey, entries), make([]cipher.SecKey, entries)
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < entries; i += 8 {
					pks[i], sks[i] = cipher.GenerateKeyPair()
				}
			}()
		}
		wg.Wait()
		for _, kind := range []string{"memory", "bbolt", "redis", "redis-x3"} {
			b.Run(fmt.Sprintf("%s/%dk", kind, entries/1000), func(b *testing.B) {
				stores := openStores(b, kind)
				before := heapInUse()
				fill(b, stores[0], pks, sks)
				perEntry := (heapInUse() - before) / float64(entries)
				urls := make([]string, len(stores))
				for i, s := range stores {
					urls[i] = serve(b, NewServer(s, nil))
				}
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
				for _, op := range []string{"register", "lookup"} {
					b.Run(op, func(b *testing.B) {
						// Registrations are signed before the clock starts.
						var regs [][]byte
						if op == "register" {
							regs = signedEntries(b, 2000)
						}
						b.ResetTimer()
						if kind == "memory" { // (after ResetTimer, which drops metrics)
							b.ReportMetric(perEntry, "heap-B/tp")
						}
						var mu sync.Mutex
						var lat []time.Duration
						var n int
						b.SetParallelism(4) // 8 at once on 2 cores
						began := time.Now()
						b.RunParallel(func(pb *testing.PB) {
							var mine []time.Duration
							for pb.Next() {
								mu.Lock()
								n++
								i := n
								mu.Unlock()
								url := urls[i%len(urls)]
								t0 := time.Now()
								var resp *http.Response
								var err error
								if op == "register" {
									resp, err = client.Post(url+"/v1/transports", "application/json", bytes.NewReader(regs[i%len(regs)]))
								} else {
									resp, err = client.Get(url + "/v1/transports?edge=" + pks[rand.IntN(entries)].Hex())
								}
								if err == nil {
									var list json.RawMessage
									json.NewDecoder(resp.Body).Decode(&list)
									resp.Body.Close()
									if resp.StatusCode != http.StatusOK {
										err = fmt.Errorf("%s: %s", resp.Status, list)
									} else if op == "lookup" && bytes.Count(list, []byte(`"edges"`)) == 0 {
										err = fmt.Errorf("a visor with no transports: %s", list)
									}
								}
								mine = append(mine, time.Since(t0))
								if err != nil {
									b.Error(err)
									return
								}
							}
							mu.Lock()
							lat = append(lat, mine...)
							mu.Unlock()
						})
						el := time.Since(began)
						slices.Sort(lat)
						if len(lat) > 0 {
							b.ReportMetric(float64(len(lat))/el.Seconds(), "ops/s")
							b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "ms-p99")
						}
					})
				}
			})
		}
	}
}

// openStores returns the stores the instances of kind run on.
func openStores(b *testing.B, kind string) []store.Store {
	switch kind {
	case "memory":
		return []store.Store{store.NewMemory(1 << 22)}
	case "bbolt":
		d, err := store.OpenBolt(filepath.Join(b.TempDir(), "s.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		s, _ := d.Store("transport-discovery", 1<<22)
		return []store.Store{s}
	}
	url := redistest.Start(b)
	var out []store.Store
	for range map[string]int{"redis": 1, "redis-x3": 3}[kind] {
		d, err := store.OpenRedis(context.Background(), url)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { d.Close() })
		s, _ := d.Store("transport-discovery", 1<<22)
		out = append(out, s)
	}
	return out
}

// fill stores transport i between pks[i] and pks[i+1] as the server would,
// 64 writers at once.
func fill(b *testing.B, s store.Store, pks []cipher.PubKey, sks []cipher.SecKey) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(pks); i += 64 {
				j := (i + 1) % len(pks)
				e := NewEntry(pks[i], pks[j], "stcpr")
				se := SignedEntry{Entry: e}
				for _, sk := range []cipher.SecKey{sks[i], sks[j]} {
					se.Sigs[e.EdgeIndex(sk.PubKey())], _ = e.Sign(sk)
				}
				raw, _ := json.Marshal(se)
				id := e.ID.String()
				for k, v := range map[string][]byte{entryPrefix + id: raw, edgePrefix + e.Edges[0].Hex() + "/" + id: []byte(id), edgePrefix + e.Edges[1].Hex() + "/" + id: []byte(id)} {
					if err := s.Swap(ctx, k, nil, v, time.Hour); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// signedEntries are n registrations of new transports, signed by both edges.
func signedEntries(b *testing.B, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		apk, ask := cipher.GenerateKeyPair()
		bpk, bsk := cipher.GenerateKeyPair()
		se := SignedEntry{Entry: NewEntry(apk, bpk, "stcpr")}
		for _, sk := range []cipher.SecKey{ask, bsk} {
			sig, err := se.Entry.Sign(sk)
			if err != nil {
				b.Fatal(err)
			}
			se.Sigs[se.Entry.EdgeIndex(sk.PubKey())] = sig
		}
		out[i], _ = json.Marshal(se)
	}
	return out
}

// serve runs h on a loopback port until the benchmark ends.
func serve(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	b.Cleanup(func() { hs.Close() })
	return "http://" + ln.Addr().String()
}

func heapInUse() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse)
}
