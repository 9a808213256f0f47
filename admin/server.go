package admin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/acceptor"
)

// MaxRequestBody bounds every request body.
const MaxRequestBody = 1 << 20

// Server serves the operations registered with Handle on any number of
// listeners, each with its own Authorizer. Register everything before Serve.
type Server struct {
	mux *http.ServeMux
	log *zap.Logger
}

// Authorizer admits a request on one listener, or answers why not (an
// *Error, CodeUnauthorized). remote is the connection's remote address as
// the listener gave it (a dmsg stream's names the caller's key).
type Authorizer func(r *http.Request, remote net.Addr) error

// Open admits every request: for the unix socket, whose mode (0600) is the
// access control.
func Open(*http.Request, net.Addr) error { return nil }

// Token admits requests carrying "Authorization: Bearer <token>" (the
// local TCP listener).
func Token(token string) Authorizer {
	want := []byte("Bearer " + token)
	return func(r *http.Request, _ net.Addr) error {
		if token == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			return Errorf(CodeUnauthorized, "missing or wrong admin token (pass --token-file with the visor's cli token file)")
		}
		return nil
	}
}

// RemoteKey admits requests whose connection comes from a key allowed
// approves; keyOf reads the key from the listener's remote address (false:
// the address names none). The dmsg link to hypervisors uses it.
func RemoteKey(keyOf func(net.Addr) (cipher.PubKey, bool), allowed func(cipher.PubKey) bool) Authorizer {
	return func(_ *http.Request, remote net.Addr) error {
		pk, ok := keyOf(remote)
		switch {
		case !ok:
			return Errorf(CodeUnauthorized, "the connection names no key")
		case !allowed(pk):
			return Errorf(CodeUnauthorized, "%s is not one of this visor's hypervisors", pk.Short())
		}
		return nil
	}
}

// NewServer returns a server with no operations yet (nil log: no logs).
func NewServer(log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{mux: http.NewServeMux(), log: log}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(CodeNotFound, "no operation %s %s (is the visor older than this CLI?)", r.Method, r.URL.Path))
	})
	return s
}

// HandleHTTP serves pattern ("GET /metrics") with h, behind the same
// authorisation as the operations: for what is not an operation (metrics,
// health), so it is not in Routes() and the hypervisor does not mount it.
func (s *Server) HandleHTTP(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handle attaches fn to op.
func Handle[Req, Resp any](s *Server, op Op[Req, Resp], fn func(context.Context, Req) (Resp, error)) {
	s.mux.HandleFunc(op.Method+" "+op.Path, func(w http.ResponseWriter, r *http.Request) {
		req, ok := decodeRequest[Req](w, r, op.Method, op.Path)
		if !ok {
			return
		}
		resp, err := fn(r.Context(), req)
		if err != nil {
			s.log.Debug("admin call failed", zapOp(op.Path), zapErr(err))
			writeError(w, asError(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
}

// decodeRequest reads an operation's request (none for GET), answering a
// bad one.
func decodeRequest[Req any](w http.ResponseWriter, r *http.Request, method, path string) (Req, bool) {
	var req Req
	if r.Method != http.MethodGet {
		body := http.MaxBytesReader(w, r.Body, MaxRequestBody)
		dec := json.NewDecoder(body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, Errorf(CodeBadRequest, "%s %s: bad request body: %v", method, path, err))
			return req, false
		}
	}
	return req, true
}

// asError is err as the caller sees it: an *Error as it is, anything else
// internal.
func asError(err error) *Error {
	var ae *Error
	if !errors.As(err, &ae) {
		ae = &Error{Code: CodeInternal, Message: err.Error()}
	}
	return ae
}

func zapOp(path string) zap.Field { return zap.String("op", path) }
func zapErr(err error) zap.Field  { return zap.NamedError("err", err) }

// remoteAddrKey carries a connection's remote address in its requests'
// contexts.
type remoteAddrKey struct{}

// handler checks auth, then dispatches.
func (s *Server) handler(auth Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remote, _ := r.Context().Value(remoteAddrKey{}).(net.Addr)
		if err := auth(r, remote); err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				ae = &Error{Code: CodeUnauthorized, Message: err.Error()}
			}
			writeError(w, ae)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// Serve answers on ln, admitting what auth admits, until ctx is done; then
// it lets calls in progress finish for up to grace before closing them. It
// closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener, auth Authorizer, grace time.Duration) error {
	if auth == nil {
		return errors.New("admin api: no authorizer for the listener (admin.Open for a unix socket)")
	}
	hs := &http.Server{
		Handler: s.handler(auth),
		ConnContext: func(cctx context.Context, c net.Conn) context.Context {
			cctx = context.WithValue(cctx, remoteAddrKey{}, c.RemoteAddr())
			return context.WithValue(cctx, serveCtxKey{}, ctx) // streams end when Serve does
		},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // a whole request; answers may stream
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	errc := make(chan error, 1)
	// At most 1024 connections at once (64 from one TCP client address);
	// exhausted descriptors are waited out, not fatal.
	go func() { errc <- hs.Serve(acceptor.Listener(ln, acceptor.Limits{PerSource: 64, Total: 1024})) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return nil
}

func writeError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status())
	json.NewEncoder(w).Encode(errorBody{Error: e})
}
