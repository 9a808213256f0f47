package suite

import (
	"io"
	"net/http"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Every HTTP service answers /metrics (parsed by Prometheus's text parser:
// its requests by status and their latency, the dmsg server's sessions, the
// process), /healthz and /readyz.
func TestServiceMetrics(t *testing.T) {
	s := start(t, Config{})
	tpd := s.URL(TransportDiscovery)
	for range 3 {
		resp, err := http.Get(tpd + "/v1/transports")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(tpd + "/v1/transports/not-an-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(s.URL(DmsgDiscovery) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses the services' /metrics: %v", err)
	}
	got := map[string]float64{}
	for _, m := range fams["skywire_svc_requests_total"].GetMetric() {
		key := ""
		for _, l := range m.Label {
			key += l.GetName() + "=" + l.GetValue() + " "
		}
		got[key] = m.Counter.GetValue()
	}
	if got["service=transport-discovery code=200 "] != 3 || got["service=transport-discovery code=400 "] != 1 {
		t.Fatalf("requests counted: %v", got)
	}
	var count uint64
	for _, m := range fams["skywire_svc_request_seconds"].GetMetric() {
		if m.Label[0].GetValue() == "transport-discovery" {
			count = m.Histogram.GetSampleCount()
		}
	}
	if count != 4 {
		t.Fatalf("the latency histogram counted %d requests, want 4", count)
	}
	if fams["skywire_dmsg_server_sessions"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Fatal("no dmsg server sessions or process metrics")
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(tpd + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, resp.Status, b)
		}
	}
}
