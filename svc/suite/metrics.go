package suite

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/skyfleet/skywire/svc/store"
)

// Every HTTP service of the suite also answers GET /metrics (the process's
// metrics, in Prometheus's text format: requests and their latency by
// service, the dmsg server's sessions, the Go runtime and the process),
// GET /healthz (it runs) and GET /readyz (its store answers).

var metadataOnce sync.Once

// requestBuckets are the request-latency buckets, seconds.
var requestBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// newMetrics is the suite's metric set.
func (s *Suite) newMetrics() *metrics.Set {
	metadataOnce.Do(func() { metrics.ExposeMetadata(true) })
	set := metrics.NewSet()
	if s.dmsg != nil {
		set.NewGauge("skywire_dmsg_server_sessions", func() float64 { return float64(s.dmsg.Sessions()) })
	}
	return set
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes streaming answers on.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// observed serves service n's handler h, counting its requests by status
// and timing them, and adds /metrics, /healthz and /readyz (st: the
// service's store, nil for none).
func (s *Suite) observed(n Name, h http.Handler, st store.Store) http.Handler {
	latency := s.metrics.NewPrometheusHistogramExt(fmt.Sprintf(`skywire_svc_request_seconds{service=%q}`, n), requestBuckets)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		s.metrics.WritePrometheus(w)
		metrics.WriteProcessMetrics(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if st != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
			defer cancel()
			if _, err := st.Get(ctx, "readyz"); err != nil && !errors.Is(err, store.ErrNotFound) {
				http.Error(w, fmt.Sprintf("not ready: the store does not answer: %v", err), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		latency.UpdateDuration(began)
		s.metrics.GetOrCreateCounter(fmt.Sprintf(`skywire_svc_requests_total{service=%q,code="%d"}`, n, sw.code)).Inc()
	})
	return mux
}
