package sd

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
)

// Store keys: entries under entryPrefix+Entry.Key(); a key's entries are
// counted under keyPrefix+pk+"/"+Entry.Key().
const (
	entryPrefix = "sd/svc/"
	keyPrefix   = "sd/key/"
	maxBody     = 4 << 10
	maxList     = 100_000
)

// MaxPerKey bounds the entries one key may have: a visor runs a handful of
// servers, and one key cannot fill the service.
const MaxPerKey = 16

// errOlder: the entry is not newer than the one stored (a replay).
var errOlder = errors.New("an entry as new or newer is registered already (a replayed or reordered registration)")

// Server is the service discovery.
type Server struct {
	store store.Store
	auth  *httpauth.Verifier
	log   *zap.Logger
	now   func() time.Time
	mux   *http.ServeMux
	// TTL is how long an entry lives unless registered again (EntryTTL;
	// each registration's answer tells the visor, which registers again at
	// a third of it).
	TTL time.Duration
}

// Registered is a registration's answer.
type Registered struct {
	Entry SignedEntry `json:"entry"`
	TTLMS int64       `json:"ttl_ms"`
}

// NewServer returns the service over s.
func NewServer(s store.Store, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	srv := &Server{store: s, auth: httpauth.NewVerifier(1 << 20), log: log, now: time.Now, mux: http.NewServeMux(), TTL: EntryTTL}
	srv.auth.ShareNonces(s)
	srv.mux.HandleFunc("POST /v1/services", srv.register)
	srv.mux.Handle("DELETE /v1/services/{type}/{pk}/{port}", srv.auth.Require(0, http.HandlerFunc(srv.remove)))
	srv.mux.HandleFunc("GET /v1/services", srv.list)
	httpauth.HandleHealth(srv.mux, "service-discovery")
	return srv
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var se SignedEntry
	if !httpauth.ReadVerified(w, r, maxBody, &se) {
		return
	}
	if !httpauth.Fresh(w, s.now(), se.Seen(), MaxClockSkew) {
		return
	}
	e := &se.Entry
	index := keyPrefix + e.PK.Hex() + "/" + e.Key()
	if _, err := s.store.Get(r.Context(), index); errors.Is(err, store.ErrNotFound) {
		n := 0
		s.store.Scan(r.Context(), keyPrefix+e.PK.Hex()+"/", func(string, []byte) bool {
			n++
			return n < MaxPerKey
		})
		if n >= MaxPerKey {
			httpauth.WriteError(w, http.StatusTooManyRequests, fmt.Sprintf("%s has %d services registered, the most one key may have", e.PK.Short(), MaxPerKey))
			return
		}
	}
	raw, _ := json.Marshal(se)
	err := store.Update(r.Context(), s.store, entryPrefix+e.Key(), s.TTL, func(old []byte) ([]byte, error) {
		var prev SignedEntry
		if old != nil && json.Unmarshal(old, &prev) == nil && prev.Entry.Timestamp >= e.Timestamp {
			return nil, errOlder
		}
		return raw, nil
	})
	if err == nil {
		err = store.Put(r.Context(), s.store, index, []byte(e.Key()), s.TTL)
	}
	switch {
	case errors.Is(err, errOlder):
		httpauth.WriteError(w, http.StatusConflict, err.Error())
	case err != nil:
		httpauth.WriteStoreError(w, "service discovery", err)
	default:
		httpauth.WriteJSON(w, http.StatusOK, Registered{Entry: se, TTLMS: s.TTL.Milliseconds()})
	}
}

func (s *Server) remove(w http.ResponseWriter, r *http.Request) {
	pk, err := cipher.ParsePubKey(r.PathValue("pk"))
	port, perr := strconv.ParseUint(r.PathValue("port"), 10, 16)
	if err != nil || perr != nil {
		httpauth.WriteError(w, http.StatusBadRequest, "want /v1/services/{type}/{pk}/{port}")
		return
	}
	if who, _ := httpauth.FromContext(r.Context()); who != pk {
		httpauth.WriteError(w, http.StatusForbidden, "only the entry's key may delete it")
		return
	}
	e := Entry{Type: r.PathValue("type"), PK: pk, Port: uint16(port)}
	s.store.Delete(r.Context(), entryPrefix+e.Key())
	s.store.Delete(r.Context(), keyPrefix+pk.Hex()+"/"+e.Key())
	httpauth.WriteJSON(w, http.StatusOK, map[string]string{"deleted": e.Key()})
}

// list answers the entries of ?type= (all types without it), of ?country=
// if given.
func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	typ, country := q.Get("type"), strings.ToUpper(q.Get("country"))
	prefix := entryPrefix
	if typ != "" {
		prefix += typ + "/"
	}
	out := []json.RawMessage{}
	s.store.Scan(r.Context(), prefix, func(_ string, raw []byte) bool {
		if country != "" {
			var se SignedEntry
			if json.Unmarshal(raw, &se) != nil || se.Entry.Country != country {
				return true
			}
		}
		out = append(out, raw)
		return len(out) < maxList
	})
	httpauth.WriteJSON(w, http.StatusOK, out)
}
