package tpdisc

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

// BenchmarkService measures the transport discovery over HTTP on loopback,
// holding 10,000 or 100,000 transports (visor i linked to visor i+1) in
// each store: registrations (POST of a new transport signed by both edges)
// and lookups (a visor's transports, GET ?edge=), 8 clients at once, with
// their rate and p99 latency. "redis-x3" is three instances on one Redis,
// the clients spread over them. Memory reports the heap each transport
// takes.
func BenchmarkService(b *testing.B) {
	for _, entries := range []int{10_000, 100_000} {
		pks, sks := keys(entries)
		for _, kind := range svcbench.Kinds {
			b.Run(fmt.Sprintf("%s/%dk", kind, entries/1000), func(b *testing.B) {
				stores := svcbench.Stores(b, kind, "transport-discovery", 1<<22)
				before := svcbench.HeapInUse()
				ctx := context.Background()
				svcbench.Fill(b, entries, func(i int) error {
					j := (i + 1) % entries
					e := NewEntry(pks[i], pks[j], "stcpr")
					se := SignedEntry{Entry: e}
					for _, sk := range []cipher.SecKey{sks[i], sks[j]} {
						se.Sigs[e.EdgeIndex(sk.PubKey())], _ = e.Sign(sk)
					}
					raw, _ := json.Marshal(se)
					id := e.ID.String()
					for k, v := range map[string][]byte{entryPrefix + id: raw, edgePrefix + e.Edges[0].Hex() + "/" + id: []byte(id), edgePrefix + e.Edges[1].Hex() + "/" + id: []byte(id)} {
						if err := stores[0].Swap(ctx, k, nil, v, time.Hour); err != nil {
							return err
						}
					}
					return nil
				})
				metrics := map[string]float64{}
				if kind == "memory" {
					metrics["heap-B/tp"] = (svcbench.HeapInUse() - before) / float64(entries)
				}
				urls := make([]string, len(stores))
				for i, s := range stores {
					urls[i] = svcbench.Serve(b, NewServer(s, nil))
				}
				client := svcbench.Client()
				b.Run("register", func(b *testing.B) {
					regs := signedEntries(b, 2000)
					svcbench.Measure(b, func(i int) error {
						resp, err := client.Post(urls[i%len(urls)]+"/v1/transports", "application/json", bytes.NewReader(regs[i%len(regs)]))
						return answer(resp, err, false)
					}, metrics)
				})
				b.Run("lookup", func(b *testing.B) {
					svcbench.Measure(b, func(i int) error {
						resp, err := client.Get(urls[i%len(urls)] + "/v1/transports?edge=" + pks[rand.IntN(entries)].Hex())
						return answer(resp, err, true)
					}, metrics)
				})
			})
		}
	}
}

// answer reads a response, an error unless 200 (and, for a lookup, unless
// it lists a transport).
func answer(resp *http.Response, err error, lookup bool) error {
	if err != nil {
		return err
	}
	var body json.RawMessage
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, body)
	}
	if lookup && !bytes.Contains(body, []byte(`"edges"`)) {
		return fmt.Errorf("a visor with no transports: %s", body)
	}
	return nil
}

// keys makes n key pairs, 8 at a time.
func keys(n int) ([]cipher.PubKey, []cipher.SecKey) {
	pks, sks := make([]cipher.PubKey, n), make([]cipher.SecKey, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				pks[i], sks[i] = cipher.GenerateKeyPair()
			}
		}()
	}
	wg.Wait()
	return pks, sks
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
