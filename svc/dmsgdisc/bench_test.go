package dmsgdisc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/svcbench"
)

// BenchmarkService measures the dmsg discovery over HTTP on loopback,
// holding 10,000 or 100,000 client entries and 3 servers in each store:
// registrations (POST of a new client's signed entry), lookups (GET of a
// client's entry) and the server list every connecting visor asks for, 8
// clients at once, with their rate and p99 latency. "redis-x3" is three
// instances on one Redis. Memory reports the heap each entry takes.
func BenchmarkService(b *testing.B) {
	for _, entries := range []int{10_000, 100_000} {
		signed, pks := entriesOf(entries)
		for _, kind := range svcbench.Kinds {
			b.Run(fmt.Sprintf("%s/%dk", kind, entries/1000), func(b *testing.B) {
				stores := svcbench.Stores(b, kind, "dmsg-discovery", 1<<22)
				before := svcbench.HeapInUse()
				ctx := context.Background()
				svcbench.Fill(b, entries, func(i int) error {
					return stores[0].Swap(ctx, entryPrefix+pks[i].Hex(), nil, signed[i], time.Hour)
				})
				metrics := map[string]float64{}
				if kind == "memory" {
					metrics["heap-B/entry"] = (svcbench.HeapInUse() - before) / float64(entries)
				}
				var servers []cipher.PubKey
				for range 3 {
					pk, sk := cipher.GenerateKeyPair()
					servers = append(servers, pk)
					e := &Entry{PK: pk, Sequence: 1, Timestamp: time.Now().UnixMilli(), Server: &ServerInfo{Address: "127.0.0.1:8081", AvailableSessions: 2048}}
					se, _ := Sign(e, sk)
					stores[0].Swap(ctx, entryPrefix+pk.Hex(), nil, se.encode(), time.Hour)
					stores[0].Swap(ctx, serverPrefix+pk.Hex(), nil, se.encode(), time.Hour)
				}
				urls := make([]string, len(stores))
				for i, s := range stores {
					srv := NewServer(s, nil)
					srv.TrustServers(servers...)
					urls[i] = svcbench.Serve(b, srv)
				}
				client := svcbench.Client()
				b.Run("register", func(b *testing.B) {
					regs, _ := entriesOf(2000)
					svcbench.Measure(b, func(i int) error {
						resp, err := client.Post(urls[i%len(urls)]+"/v1/entries", "application/json", bytes.NewReader(regs[i%len(regs)]))
						return answer(resp, err, "", i >= len(regs))
					}, metrics)
				})
				b.Run("lookup", func(b *testing.B) {
					svcbench.Measure(b, func(i int) error {
						resp, err := client.Get(urls[i%len(urls)] + "/v1/entries/" + pks[rand.IntN(entries)].Hex())
						return answer(resp, err, `"delegated_servers"`, false)
					}, metrics)
				})
				b.Run("servers", func(b *testing.B) {
					svcbench.Measure(b, func(i int) error {
						resp, err := client.Get(urls[i%len(urls)] + "/v1/servers")
						return answer(resp, err, servers[2].Hex(), false)
					}, metrics)
				})
			})
		}
	}
}

// answer reads a response: an error unless 200 (or, once registrations come
// round again, 409 for a sequence already stored) and unless the body
// holds want.
func answer(resp *http.Response, err error, want string, again bool) error {
	if err != nil {
		return err
	}
	var body json.RawMessage
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusConflict && again {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	if !bytes.Contains(body, []byte(want)) {
		return fmt.Errorf("no %s in %.200s", want, body)
	}
	return nil
}

// entriesOf makes n clients' signed entries (each on one server), 8 at a
// time, and their keys.
func entriesOf(n int) ([][]byte, []cipher.PubKey) {
	out, pks := make([][]byte, n), make([]cipher.PubKey, n)
	srv, _ := cipher.GenerateKeyPair()
	now := time.Now().UnixMilli()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				pk, sk := cipher.GenerateKeyPair()
				se, _ := Sign(&Entry{PK: pk, Sequence: uint64(now), Timestamp: now, Client: &ClientInfo{DelegatedServers: []cipher.PubKey{srv}}}, sk)
				out[i], pks[i] = se.encode(), pk
			}
		}()
	}
	wg.Wait()
	return out, pks
}
