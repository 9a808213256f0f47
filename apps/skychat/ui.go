package skychat

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

//go:embed ui
var uiFiles embed.FS

// csp allows the page its own files only: a message can never run script.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler is the web UI and its API for the visor self. It answers only
// requests for a loopback host (no DNS rebinding), and changes only for
// requests carrying X-Skychat (no other site can send that header, so no
// cross-site request can send a message).
func Handler(c *Chat, self cipher.PubKey) http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(uiFiles, "ui")
	files := http.FileServerFS(static)
	mux.Handle("GET /", files)
	mux.HandleFunc("GET /api/info", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"pk": self, "max_text": MaxText})
	})
	mux.HandleFunc("GET /api/conversations", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, nonNil(c.Conversations()))
	})
	mux.HandleFunc("GET /api/messages", func(w http.ResponseWriter, r *http.Request) {
		pk, err := cipher.ParsePubKey(r.URL.Query().Get("peer"))
		if err != nil {
			writeError(w, http.StatusBadRequest, "peer: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, nonNil(c.Messages(pk)))
	})
	mux.HandleFunc("POST /api/send", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Peer string `json:"peer"`
			Text string `json:"text"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		pk, err := cipher.ParsePubKey(req.Peer)
		if err != nil {
			writeError(w, http.StatusBadRequest, "peer: "+err.Error())
			return
		}
		if pk == self {
			writeError(w, http.StatusBadRequest, "that is this visor's own key")
			return
		}
		m, err := c.Send(pk, req.Text)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, m)
	})
	mux.HandleFunc("POST /api/label", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Peer  string `json:"peer"`
			Label string `json:"label"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		pk, err := cipher.ParsePubKey(req.Peer)
		if err == nil {
			err = c.SetLabel(pk, req.Label)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"label": req.Label})
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) { events(w, r, c) })
	return guard(mux)
}

// events streams every new message and state change (server-sent events)
// until the page goes; one that falls too far behind is ended, and the
// page reloads what it shows.
func events(w http.ResponseWriter, r *http.Request, c *Chat) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	feed, cancel := c.Subscribe()
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, "retry: 2000\n\n")
	fl.Flush()
	ping := time.NewTicker(25 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ping.C:
			fmt.Fprint(w, ": ping\n\n")
		case m, ok := <-feed:
			if !ok {
				return
			}
			b, _ := json.Marshal(m)
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		fl.Flush()
	}
}

// guard refuses requests for a host that is not loopback, and changes
// without X-Skychat; every answer carries the page's security headers.
func guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if ip := net.ParseIP(host); !(host == "localhost" || ip != nil && ip.IsLoopback()) {
			writeError(w, http.StatusForbidden, "skychat answers only on a loopback address (open it at 127.0.0.1)")
			return
		}
		if r.Method != http.MethodGet && r.Header.Get("X-Skychat") == "" {
			writeError(w, http.StatusForbidden, "changes need the X-Skychat header (sent by skychat's own page)")
			return
		}
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 2*MaxText+1024))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a message is at most %d bytes", MaxText))
			return false
		}
		writeError(w, http.StatusBadRequest, "a JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
