//go:build linux

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape GETs url (over the unix socket sock if given) and parses it with
// Prometheus's own text parser.
func scrape(t *testing.T, sock, url string) map[string]*dto.MetricFamily {
	t.Helper()
	c := http.DefaultClient
	if sock != "" {
		c = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %q %s", url, resp.Status, resp.Header.Get("Content-Type"), b)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses /metrics: %v", err)
	}
	return fams
}

// value is the sample of family name whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// A visor's /metrics, on the admin socket and on metrics_addr, parsed by
// Prometheus's text parser after a transport, a route and an app have done
// something: bytes and packets by transport type, transports and rules,
// route setups and their latency, drops, dmsg sessions, app states and
// starts; /healthz and /readyz answer.
func TestMetrics(t *testing.T) {
	n := startNetwork(t)
	dir := shortDir(t)
	a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
	metricsAddr := freePort(t)
	a.edit(t, func(cfg map[string]any) { cfg["metrics_addr"] = metricsAddr })
	a.start(t)
	b.start(t)
	until(t, "a dmsg transport a → b", func() bool {
		return sw(t, "skywire", "cli", "add-tp", b.pk, "--type", "dmsg", "--rpc", a.sock).code == 0
	})
	if r := sw(t, "skywire", "cli", "visor", "ping", b.pk, "-c", "3", "--rpc", a.sock); r.code != 0 {
		t.Fatalf("ping: %s", r.stderr)
	}
	sw(t, "skywire", "cli", "visor", "ping", a.pk, "-c", "1", "--rpc", a.sock) // a route to itself: a failure to count

	for _, src := range []struct{ sock, url string }{{a.sock, "http://visor/metrics"}, {"", "http://" + metricsAddr + "/metrics"}} {
		fams := scrape(t, src.sock, src.url)
		checks := []struct {
			name   string
			labels map[string]string
			ok     func(float64) bool
			want   string
		}{
			{"skywire_transports", map[string]string{"type": "dmsg"}, func(v float64) bool { return v == 1 }, "1"},
			{"skywire_transports", map[string]string{"type": "stcp"}, func(v float64) bool { return v == 0 }, "0"},
			{"skywire_transport_sent_bytes_total", map[string]string{"type": "dmsg"}, func(v float64) bool { return v > 0 }, "> 0"},
			{"skywire_transport_received_packets_total", map[string]string{"type": "dmsg"}, func(v float64) bool { return v >= 3 }, ">= 3"},
			{"skywire_route_setups_total", map[string]string{"outcome": "ok"}, func(v float64) bool { return v >= 1 }, ">= 1"},
			{"skywire_route_setups_total", map[string]string{"outcome": "failed"}, func(v float64) bool { return v >= 1 }, ">= 1"},
			{"skywire_route_setup_seconds", map[string]string{"outcome": "ok"}, func(v float64) bool { return v >= 1 }, ">= 1 observation"},
			{"skywire_packets_dropped_total", map[string]string{"reason": "unknown_route"}, func(v float64) bool { return v >= 0 }, "present"},
			{"skywire_dmsg_sessions", nil, func(v float64) bool { return v >= 1 }, ">= 1"},
			{"skywire_app_state", map[string]string{"app": "skychat", "state": "running"}, func(v float64) bool { return v == 1 }, "1"},
			{"skywire_app_starts_total", map[string]string{"app": "skychat"}, func(v float64) bool { return v == 1 }, "1"},
			{"skywire_route_rules", map[string]string{"state": "pending"}, func(v float64) bool { return v == 0 }, "0"},
			{"process_resident_memory_bytes", nil, func(v float64) bool { return v > 0 }, "> 0"},
		}
		for _, c := range checks {
			v, ok := value(fams, c.name, c.labels)
			if !ok || !c.ok(v) {
				t.Errorf("%s %s%v = %v (found %v), want %s", src.url, c.name, c.labels, v, ok, c.want)
			}
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + metricsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %s %s", path, resp.Status, body)
		}
	}
}
