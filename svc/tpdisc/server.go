package tpdisc

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
)

// Store keys: entries under entryPrefix+id; an index entry per edge under
// edgePrefix+pk+"/"+id, so listing a visor's transports does not walk all.
const (
	entryPrefix = "tpdisc/tp/"
	edgePrefix  = "tpdisc/edge/"
	maxBody     = 4 << 10
	maxList     = 100_000
)

// MaxPerEdge bounds the transports registered with one key as an edge (a
// visor keeps at most 1024): fake transports cannot pile up on one key.
const MaxPerEdge = 1024

// Server is the transport discovery service.
type Server struct {
	store store.Store
	auth  *httpauth.Verifier
	log   *zap.Logger
	now   func() time.Time
	mux   *http.ServeMux
	// maxPerEdge is MaxPerEdge (tests lower it).
	maxPerEdge int
}

// NewServer returns the service over s.
func NewServer(s store.Store, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	srv := &Server{store: s, auth: httpauth.NewVerifier(1 << 20), log: log, now: time.Now, mux: http.NewServeMux(), maxPerEdge: MaxPerEdge}
	srv.auth.ShareNonces(s)
	srv.mux.HandleFunc("POST /v1/transports", srv.register)
	srv.mux.Handle("POST /v1/transports/{id}/heartbeat", srv.auth.Require(0, http.HandlerFunc(srv.heartbeat)))
	srv.mux.Handle("DELETE /v1/transports/{id}", srv.auth.Require(0, http.HandlerFunc(srv.remove)))
	srv.mux.HandleFunc("GET /v1/transports/{id}", srv.get)
	srv.mux.HandleFunc("GET /v1/transports", srv.list)
	httpauth.HandleHealth(srv.mux, "transport-discovery")
	return srv
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var se SignedEntry
	if !httpauth.ReadVerified(w, r, maxBody, &se) {
		return
	}
	if !httpauth.Fresh(w, s.now(), time.UnixMilli(se.Entry.Timestamp), MaxClockSkew) {
		return
	}
	raw, _ := json.Marshal(se)
	id := se.Entry.ID.String()
	for _, edge := range se.Entry.Edges {
		if _, err := s.store.Get(r.Context(), edgePrefix+edge.Hex()+"/"+id); err == nil {
			continue // registered already: a re-registration
		}
		n := 0
		s.store.Scan(r.Context(), edgePrefix+edge.Hex()+"/", func(string, []byte) bool {
			n++
			return n < s.maxPerEdge
		})
		if n >= s.maxPerEdge {
			httpauth.WriteError(w, http.StatusTooManyRequests, fmt.Sprintf("%s already has %d transports registered, the most one key may have", edge.Short(), s.maxPerEdge))
			return
		}
	}
	put := func(key string, v []byte) error {
		return store.Put(r.Context(), s.store, key, v, EntryTTL)
	}
	err := put(entryPrefix+id, raw)
	for _, edge := range se.Entry.Edges {
		if err == nil {
			err = put(edgePrefix+edge.Hex()+"/"+id, []byte(id))
		}
	}
	if err != nil {
		httpauth.WriteStoreError(w, "transport discovery", err)
		return
	}
	s.log.Debug("transport registered", zap.String("tp_id", id), zap.String("type", se.Entry.Type))
	httpauth.WriteJSON(w, http.StatusOK, se)
}

// load returns the stored entry for the request's {id}, answering errors.
func (s *Server) load(w http.ResponseWriter, r *http.Request) (*SignedEntry, []byte, bool) {
	id, err := ParseID(r.PathValue("id"))
	if err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	raw, err := s.store.Get(r.Context(), entryPrefix+id.String())
	if errors.Is(err, store.ErrNotFound) {
		httpauth.WriteError(w, http.StatusNotFound, "no transport "+id.String())
		return nil, nil, false
	}
	if err != nil {
		httpauth.WriteError(w, http.StatusInternalServerError, err.Error())
		return nil, nil, false
	}
	var se SignedEntry
	if err := json.Unmarshal(raw, &se); err != nil {
		httpauth.WriteError(w, http.StatusInternalServerError, "stored entry unreadable: "+err.Error())
		return nil, nil, false
	}
	return &se, raw, true
}

// fromEdge answers 403 unless the signer of the request is an edge of se.
func fromEdge(w http.ResponseWriter, r *http.Request, se *SignedEntry) bool {
	who, _ := httpauth.FromContext(r.Context())
	if se.Entry.EdgeIndex(who) < 0 {
		httpauth.WriteError(w, http.StatusForbidden, "only an edge of the transport may do this")
		return false
	}
	return true
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	se, raw, ok := s.load(w, r)
	if !ok || !fromEdge(w, r, se) {
		return
	}
	id := se.Entry.ID.String()
	keys := []string{entryPrefix + id, edgePrefix + se.Entry.Edges[0].Hex() + "/" + id, edgePrefix + se.Entry.Edges[1].Hex() + "/" + id}
	vals := [][]byte{raw, []byte(id), []byte(id)}
	for i, k := range keys {
		v := vals[i]
		if err := store.Put(r.Context(), s.store, k, v, EntryTTL); err != nil {
			httpauth.WriteStoreError(w, "transport discovery", err)
			return
		}
	}
	httpauth.WriteJSON(w, http.StatusOK, map[string]string{"refreshed": id})
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	se, _, ok := s.load(w, r)
	if !ok || !fromEdge(w, r, se) {
		return
	}
	id := se.Entry.ID.String()
	s.store.Delete(r.Context(), entryPrefix+id)
	for _, edge := range se.Entry.Edges {
		s.store.Delete(r.Context(), edgePrefix+edge.Hex()+"/"+id)
	}
	s.log.Debug("transport deregistered", zap.String("tp_id", id))
	httpauth.WriteJSON(w, http.StatusOK, map[string]string{"deleted": id})
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	se, _, ok := s.load(w, r)
	if ok {
		httpauth.WriteJSON(w, http.StatusOK, se)
	}
}

// list answers every transport, or ?edge=PK's.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	out := []SignedEntry{}
	add := func(raw []byte) {
		var se SignedEntry
		if json.Unmarshal(raw, &se) == nil {
			out = append(out, se)
		}
	}
	if e := r.URL.Query().Get("edge"); e != "" {
		pk, err := cipher.ParsePubKey(e)
		if err != nil {
			httpauth.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.store.Scan(r.Context(), edgePrefix+pk.Hex()+"/", func(_ string, id []byte) bool {
			if raw, err := s.store.Get(r.Context(), entryPrefix+string(id)); err == nil {
				add(raw)
			}
			return len(out) < maxList
		})
	} else {
		s.store.Scan(r.Context(), entryPrefix, func(_ string, raw []byte) bool {
			add(raw)
			return len(out) < maxList
		})
	}
	httpauth.WriteJSON(w, http.StatusOK, out)
}
