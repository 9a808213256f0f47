//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// chatDelivery sends count messages from the skychat UI at from to peer as
// fast as the API takes them, and returns the messages per second one way
// (the first sent to the last delivered) and each message's delivery
// latency (sent to acknowledged), read from the sender's event stream.
func chatDelivery(tb testing.TB, from, peer string, count int) (float64, []time.Duration) {
	tb.Helper()
	resp, err := http.Get("http://" + from + "/api/events")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var mu sync.Mutex
	settled := map[string]time.Time{} // id → when it was delivered (or failed)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var m struct{ ID, State, Error string }
			json.Unmarshal([]byte(data), &m)
			if m.State == "delivered" || m.State == "failed" {
				if m.State == "failed" {
					tb.Errorf("a message failed: %s", m.Error)
				}
				mu.Lock()
				settled[m.ID] = time.Now()
				mu.Unlock()
			}
		}
	}()
	time.Sleep(100 * time.Millisecond) // the stream is up
	sent := map[string]time.Time{}
	first := time.Now()
	for i := range count {
		body, _ := json.Marshal(map[string]string{"peer": peer, "text": fmt.Sprintf("message %d of the benchmark", i)})
		req, _ := http.NewRequest(http.MethodPost, "http://"+from+"/api/send", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Skychat", "1")
		at := time.Now()
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		var m struct{ ID string }
		json.NewDecoder(r.Body).Decode(&m)
		r.Body.Close()
		sent[m.ID] = at
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		mu.Lock()
		n := 0
		var last time.Time
		var lat []time.Duration
		for id, at := range sent {
			if d, ok := settled[id]; ok {
				n++
				lat = append(lat, d.Sub(at))
				if d.After(last) {
					last = d
				}
			}
		}
		mu.Unlock()
		if n == count {
			slices.Sort(lat)
			return float64(count) / last.Sub(first).Seconds(), lat
		}
		if time.Now().After(deadline) {
			tb.Fatalf("only %d of %d delivered", n, count)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BenchmarkSkychat: messages per second one way, and the delivery latency
// (median, p99), over 1 and 2 hops (stcp), with the peers' rate limit
// raised out of the way.
func BenchmarkSkychat(b *testing.B) {
	n := startNetwork(b)
	ports := freePorts(b, 3)
	ui := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	vs := startLineWith(b, n, []string{"stcp", "stcp"}, func(i, _ int, _ []string) []any {
		return []any{map[string]any{"app": "skychat", "auto_start": true, "port": 1, "args": []string{"--addr", ui(i), "--rate", "100000"}}}
	}, nil)
	for i := range vs {
		waitHTTP(b, vs[i].proc, "http://"+ui(i)+"/api/info")
	}
	const count = 2000
	for _, c := range []struct {
		name string
		to   int
	}{{"1 hop", 1}, {"2 hops", 2}} {
		chatDelivery(b, ui(0), vs[c.to].pk, 50) // the route up
		rate, lat := chatDelivery(b, ui(0), vs[c.to].pk, count)
		med, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		b.Logf("%s: %.0f messages/s one way; delivery %v median, %v p99 (%d messages)", c.name, rate, med.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), count)
		unit := strings.ReplaceAll(c.name, " ", "")
		b.ReportMetric(rate, "msgs/s-"+unit)
		b.ReportMetric(float64(med.Microseconds())/1000, "ms-median-"+unit)
		b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99-"+unit)
	}
	for range b.N {
	}
}
