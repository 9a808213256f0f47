package dmsgdisc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/internal/configfile"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
)

// Store keys: every entry under entryPrefix, server entries also under
// serverPrefix (so listing servers does not walk every client).
const (
	entryPrefix  = "dmsgdisc/entry/"
	serverPrefix = "dmsgdisc/server/"
)

// Server is the dmsg discovery service.
type Server struct {
	store store.Store
	auth  *httpauth.Verifier
	log   *zap.Logger
	now   func() time.Time
	mux   *http.ServeMux
}

// NewServer returns the service over s.
func NewServer(s store.Store, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	srv := &Server{store: s, auth: httpauth.NewVerifier(1 << 20), log: log, now: time.Now, mux: http.NewServeMux()}
	srv.mux.HandleFunc("POST /v1/entries", srv.postEntry)
	srv.mux.HandleFunc("GET /v1/entries/{pk}", srv.getEntry)
	srv.mux.Handle("DELETE /v1/entries/{pk}", srv.auth.Require(0, http.HandlerFunc(srv.deleteEntry)))
	srv.mux.HandleFunc("GET /v1/servers", srv.getServers)
	srv.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		httpauth.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": "dmsg-discovery"})
	})
	return srv
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

var errStaleSequence = errors.New("sequence must increase")

func (s *Server) postEntry(w http.ResponseWriter, r *http.Request) {
	var se SignedEntry
	if !httpauth.ReadJSON(w, r, maxEntryBytes*2, &se) {
		return
	}
	e, err := se.Open()
	if err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	if skew := s.now().Sub(time.UnixMilli(e.Timestamp)); skew > MaxClockSkew || skew < -MaxClockSkew {
		httpauth.WriteError(w, http.StatusBadRequest, fmt.Sprintf("entry timestamp is %v from the service's clock (at most %v): check the clock", skew.Round(time.Second), MaxClockSkew))
		return
	}
	if e.Server != nil {
		if err := configfile.CheckHostPort(e.Server.Address, false); err != nil {
			httpauth.WriteError(w, http.StatusBadRequest, "server address: "+err.Error())
			return
		}
	}
	raw := se.encode()
	key := entryPrefix + e.PK.Hex()
	err = store.Update(r.Context(), s.store, key, EntryTTL, func(old []byte) ([]byte, error) {
		if old != nil {
			var prev SignedEntry
			if json.Unmarshal(old, &prev) == nil {
				if pe, err := prev.Open(); err == nil && pe.Sequence >= e.Sequence {
					return nil, fmt.Errorf("%w (stored %d, got %d)", errStaleSequence, pe.Sequence, e.Sequence)
				}
			}
		}
		return raw, nil
	})
	switch {
	case errors.Is(err, errStaleSequence):
		httpauth.WriteError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, store.ErrFull):
		httpauth.WriteError(w, http.StatusServiceUnavailable, "the discovery is full")
		return
	case err != nil:
		httpauth.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	skey := serverPrefix + e.PK.Hex()
	if e.Server != nil {
		err = store.Update(r.Context(), s.store, skey, EntryTTL, func([]byte) ([]byte, error) { return raw, nil })
	} else {
		err = s.store.Delete(r.Context(), skey)
	}
	if err != nil {
		httpauth.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Debug("entry stored", zap.String("pk", e.PK.Hex()), zap.Uint64("sequence", e.Sequence), zap.Bool("server", e.Server != nil))
	w.Header().Set("Content-Type", "application/json")
	w.Write(raw)
}

func (s *Server) getEntry(w http.ResponseWriter, r *http.Request) {
	pk, ok := httpauth.PathPK(w, r)
	if !ok {
		return
	}
	raw, err := s.store.Get(r.Context(), entryPrefix+pk.Hex())
	if errors.Is(err, store.ErrNotFound) {
		httpauth.WriteError(w, http.StatusNotFound, "no entry for "+pk.Hex())
		return
	}
	if err != nil {
		httpauth.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(raw)
}

func (s *Server) deleteEntry(w http.ResponseWriter, r *http.Request) {
	pk, ok := httpauth.PathPK(w, r)
	if !ok {
		return
	}
	if who, _ := httpauth.FromContext(r.Context()); who != pk {
		httpauth.WriteError(w, http.StatusForbidden, "only the entry's owner may delete it")
		return
	}
	s.store.Delete(r.Context(), entryPrefix+pk.Hex())
	s.store.Delete(r.Context(), serverPrefix+pk.Hex())
	httpauth.WriteJSON(w, http.StatusOK, map[string]string{"deleted": pk.Hex()})
}

func (s *Server) getServers(w http.ResponseWriter, r *http.Request) {
	out := []byte{'['}
	n := 0
	err := s.store.Scan(r.Context(), serverPrefix, func(_ string, v []byte) bool {
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, v...) // stored entries go out byte for byte
		n++
		return n < defaultPageLimit
	})
	if err != nil {
		httpauth.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(out, ']', '\n'))
}
