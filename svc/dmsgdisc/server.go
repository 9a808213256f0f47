package dmsgdisc

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
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

	mu      sync.RWMutex // guards trusted
	trusted map[cipher.PubKey]bool
}

// TrustServers adds keys the discovery takes server entries from: the dmsg
// servers of this network, as its operator names them. A server entry from
// any other key is refused (403), so whoever can reach the discovery cannot
// list servers; with no key trusted, no server can publish.
func (s *Server) TrustServers(pks ...cipher.PubKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, pk := range pks {
		s.trusted[pk] = true
	}
}

func (s *Server) isTrusted(pk cipher.PubKey) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.trusted[pk]
}

// NewServer returns the service over s.
func NewServer(s store.Store, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	srv := &Server{store: s, auth: httpauth.NewVerifier(1 << 20), log: log, now: time.Now, mux: http.NewServeMux(), trusted: map[cipher.PubKey]bool{}}
	srv.auth.ShareNonces(s)
	srv.mux.HandleFunc("POST /v1/entries", srv.postEntry)
	srv.mux.HandleFunc("GET /v1/entries/{pk}", srv.getEntry)
	srv.mux.Handle("DELETE /v1/entries/{pk}", srv.auth.Require(0, http.HandlerFunc(srv.deleteEntry)))
	srv.mux.HandleFunc("GET /v1/servers", srv.getServers)
	httpauth.HandleHealth(srv.mux, "dmsg-discovery")
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
	if !httpauth.Fresh(w, s.now(), time.UnixMilli(e.Timestamp), MaxClockSkew) {
		return
	}
	if e.Server != nil && !s.isTrusted(e.PK) {
		httpauth.WriteError(w, http.StatusForbidden, fmt.Sprintf("%s is not a trusted dmsg server of this network: the discovery's operator must trust its key (skywire svc dmsg-discovery --trusted-servers)", e.PK.Short()))
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
	case err != nil:
		httpauth.WriteStoreError(w, "dmsg discovery", err)
		return
	}
	skey := serverPrefix + e.PK.Hex()
	if e.Server != nil {
		err = store.Put(r.Context(), s.store, skey, raw, EntryTTL)
	} else {
		err = s.store.Delete(r.Context(), skey)
	}
	if err != nil {
		httpauth.WriteStoreError(w, "dmsg discovery", err)
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

// getServers lists the trusted servers' entries (at most defaultPageLimit),
// written out as the store yields them: a request holds one entry at a
// time, not the list.
func (s *Server) getServers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 8<<10)
	bw.WriteByte('[')
	n := 0
	s.store.Scan(r.Context(), serverPrefix, func(k string, v []byte) bool {
		if pk, err := cipher.ParsePubKey(strings.TrimPrefix(k, serverPrefix)); err != nil || !s.isTrusted(pk) {
			return true // published before its key lost the operator's trust
		}
		if n > 0 {
			bw.WriteByte(',')
		}
		bw.Write(v) // stored entries go out byte for byte
		n++
		return n < defaultPageLimit
	})
	bw.WriteString("]\n")
	bw.Flush()
}
