package sd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// fill registers n entries of vpn and proxy servers (half each) and returns
// their signed bodies.
func fill(b *testing.B, base string, n int) [][]byte {
	b.Helper()
	bodies := make([][]byte, n)
	hc := &http.Client{}
	for i := range n {
		pk, sk := cipher.GenerateKeyPair()
		typ, port := TypeVPN, uint16(44)
		if i%2 == 1 {
			typ, port = TypeProxy, 3
		}
		se, err := Entry{Type: typ, PK: pk, Port: port, Version: "1.0.0", Country: "DE"}.Sign(sk, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		bodies[i], _ = json.Marshal(se)
		resp, err := hc.Post(base+"/v1/services", "application/json", bytes.NewReader(bodies[i]))
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("register %d: %v %v", i, resp, err)
		}
		resp.Body.Close()
	}
	return bodies
}

// BenchmarkRegister: registrations per second (entries signed beforehand:
// the service's verification and store are measured) into a discovery
// holding 10,000 entries, several clients at once.
func BenchmarkRegister(b *testing.B) {
	_, base := service(b, time.Hour)
	fill(b, base, 10000)
	// Fresh registrations of new keys, signed before the clock starts.
	bodies := make([][]byte, b.N)
	for i := range bodies {
		pk, sk := cipher.GenerateKeyPair()
		se, _ := Entry{Type: TypeVPN, PK: pk, Port: 44, Version: "1.0.0"}.Sign(sk, time.Now())
		bodies[i], _ = json.Marshal(se)
	}
	var next atomic.Int64
	parallel(b, "registrations/s", func(hc *http.Client) (*http.Response, error) {
		return hc.Post(base+"/v1/services", "application/json", bytes.NewReader(bodies[next.Add(1)-1]))
	})
}

// parallel runs do from several clients at once, b.N times in all, each
// answer read whole, and reports the rate as unit.
func parallel(b *testing.B, unit string, do func(hc *http.Client) (*http.Response, error)) {
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		hc := &http.Client{}
		for pb.Next() {
			resp, err := do(hc)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("%s: %v %v", unit, resp, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkList: the service's queries per second for one type (5,000 of
// the 10,000 entries, 2.5 MB of JSON), several clients at once.
func BenchmarkList(b *testing.B) {
	_, base := service(b, time.Hour)
	fill(b, base, 10000)
	parallel(b, "queries/s", func(hc *http.Client) (*http.Response, error) { return hc.Get(base + "/v1/services?type=vpn") })
}

// BenchmarkListVerified: the same query as `vpn list` makes it, decoded and
// every one of the 5,000 signatures verified.
func BenchmarkListVerified(b *testing.B) {
	_, base := service(b, time.Hour)
	fill(b, base, 10000)
	_, sk := cipher.GenerateKeyPair()
	c := NewClient(base, sk)
	defer c.Close()
	b.ResetTimer()
	for range b.N {
		list, err := c.List(context.Background(), TypeVPN, "")
		if err != nil || len(list) != 5000 {
			b.Fatalf("%d listed, %v", len(list), err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
