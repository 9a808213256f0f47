package visor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/transport"
)

// The visor's metrics, in Prometheus's text format: GET /metrics on the
// admin API (and on metrics_addr when set), with /healthz (the visor runs)
// and /readyz (it can reach the network: a dmsg session, or a transport,
// when it has a dmsg discovery to use). Counters and gauges are read from
// the parts' own state at each scrape (no extra work on the data path);
// only the route-setup latency is recorded as it happens.

// appStates are the states an app gauge is written for, so a scraper sees
// a 0 rather than a missing series.
var appStates = []string{"stopped", "running", "errored"}

// setupBuckets are the route-setup latency buckets, seconds.
var setupBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// metadataOnce turns on # HELP/# TYPE lines for every metric set of the
// process (a setting of the library's, global).
var metadataOnce sync.Once

// newMetrics makes the visor's metric set.
func (v *Visor) newMetrics() *metrics.Set {
	metadataOnce.Do(func() { metrics.ExposeMetadata(true) })
	s := metrics.NewSet()
	hist := map[string]*metrics.PrometheusHistogram{}
	for _, o := range []string{"ok", "no_route", "refused", "timeout", "canceled", "failed"} {
		hist[o] = s.NewPrometheusHistogramExt(fmt.Sprintf(`skywire_route_setup_seconds{outcome=%q}`, o), setupBuckets)
	}
	v.router.OnDial(func(outcome string, took time.Duration) {
		if h := hist[outcome]; h != nil {
			h.Update(took.Seconds())
		}
	})
	s.RegisterMetricsWriter(func(w io.Writer) { v.writeMetrics(w) })
	return s
}

// writeMetrics writes the scrape-time series.
func (v *Visor) writeMetrics(w io.Writer) {
	line := func(name, help, typ string) { fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ) }
	totals := v.tpm.Totals()
	types := make([]string, 0, len(totals))
	for t := range totals {
		types = append(types, string(t))
	}
	for _, t := range v.tpm.Types() {
		if !slices.Contains(types, string(t)) {
			types = append(types, string(t))
		}
	}
	slices.Sort(types)
	for _, m := range []struct {
		name, help, typ string
		get             func(string) uint64
	}{
		{"skywire_transport_sent_bytes_total", "Bytes sent on transports, by type.", "counter", func(t string) uint64 { return totals[transport.Type(t)].SentBytes }},
		{"skywire_transport_received_bytes_total", "Bytes received on transports, by type.", "counter", func(t string) uint64 { return totals[transport.Type(t)].ReceivedBytes }},
		{"skywire_transport_sent_packets_total", "Packets sent on transports, by type.", "counter", func(t string) uint64 { return totals[transport.Type(t)].SentPackets }},
		{"skywire_transport_received_packets_total", "Packets received on transports, by type.", "counter", func(t string) uint64 { return totals[transport.Type(t)].ReceivedPackets }},
		{"skywire_transports", "Transports open now, by type.", "gauge", func(t string) uint64 { return uint64(totals[transport.Type(t)].Up) }},
	} {
		line(m.name, m.help, m.typ)
		for _, t := range types {
			fmt.Fprintf(w, "%s{type=%q} %d\n", m.name, t, m.get(t))
		}
	}

	rules := map[string]int{"forward": 0, "consume": 0, "pending": 0}
	for _, r := range v.router.Rules() {
		if r.Pending {
			rules["pending"]++
		} else {
			rules[r.Kind]++
		}
	}
	line("skywire_route_rules", "Routing rules held now, by state (a route has one per direction on each visor on it).", "gauge")
	for _, st := range []string{"consume", "forward", "pending"} {
		fmt.Fprintf(w, "skywire_route_rules{state=%q} %d\n", st, rules[st])
	}
	setups := v.router.Setups()
	line("skywire_route_setups_total", "Routes this visor set up, by outcome.", "counter")
	for _, o := range []string{"ok", "no_route", "refused", "timeout", "canceled", "failed"} {
		fmt.Fprintf(w, "skywire_route_setups_total{outcome=%q} %d\n", o, setups[o])
	}
	drops := v.router.Drops()
	line("skywire_packets_dropped_total", "Packets the router dropped, by reason.", "counter")
	for _, r := range []string{"before_setup", "queue_full", "unknown_route", "wrong_transport"} {
		fmt.Fprintf(w, "skywire_packets_dropped_total{reason=%q} %d\n", r, drops[r])
	}

	line("skywire_dmsg_sessions", "Sessions with dmsg servers open now.", "gauge")
	fmt.Fprintf(w, "skywire_dmsg_sessions %d\n", len(v.dmsgServers()))

	apps := v.apps.List()
	line("skywire_app_state", "1 for each app's current state.", "gauge")
	for _, a := range apps {
		for _, st := range appStates {
			val := 0
			if a.State == st {
				val = 1
			}
			fmt.Fprintf(w, "skywire_app_state{app=%q,state=%q} %d\n", a.Name, st, val)
		}
	}
	line("skywire_app_starts_total", "Times each app was started since the visor started (restarts are the rest).", "counter")
	for _, a := range apps {
		fmt.Fprintf(w, "skywire_app_starts_total{app=%q} %d\n", a.Name, a.Starts)
	}
	line("skywire_visor_uptime_seconds", "Seconds since the visor started.", "gauge")
	fmt.Fprintf(w, "skywire_visor_uptime_seconds %.3f\n", time.Since(v.started).Seconds())
}

// metricsHandler serves the set (and the Go runtime's and the process's).
func metricsHandler(s *metrics.Set) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
}

// healthz answers 200 while the visor runs; readyz 200 once it can reach
// the network (503 with the reason until then).
func (v *Visor) healthHandlers(mux interface{ HandleHTTP(string, http.Handler) }) {
	mux.HandleHTTP("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	}))
	mux.HandleHTTP("GET /readyz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if why := v.notReady(); why != "" {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	}))
}

// serveMetrics serves /metrics, /healthz and /readyz on metrics_addr until
// ctx ends.
func (v *Visor) serveMetrics(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(v.metrics))
	v.healthHandlers(muxHandle{mux})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { hs.Close() })
	defer stop()
	v.log.Info("serving metrics", zap.String("addr", v.metricsLn.Addr().String()))
	if err := hs.Serve(v.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type muxHandle struct{ *http.ServeMux }

func (m muxHandle) HandleHTTP(pattern string, h http.Handler) { m.Handle(pattern, h) }

// MetricsAddr is where metrics_addr listens ("" if not set).
func (v *Visor) MetricsAddr() string {
	if v.metricsLn == nil {
		return ""
	}
	return v.metricsLn.Addr().String()
}

// notReady is why the visor cannot reach the network yet, or "".
func (v *Visor) notReady() string {
	if v.dmsg != nil && len(v.dmsgServers()) == 0 {
		return "no dmsg session yet (is the dmsg discovery reachable, and does it list a server?)"
	}
	return ""
}
