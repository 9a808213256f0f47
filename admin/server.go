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

	"github.com/skyfleet/skywire/internal/acceptor"
)

// MaxRequestBody bounds every request body.
const MaxRequestBody = 1 << 20

// Server serves the operations registered with Handle. Register everything
// before Serve.
type Server struct {
	mux   *http.ServeMux
	token string // "" when the listener itself is the access control (unix socket)
	log   *zap.Logger
}

// NewServer returns a server. A non-empty token is required, as
// "Authorization: Bearer <token>", on every request.
func NewServer(log *zap.Logger, token string) *Server {
	s := &Server{mux: http.NewServeMux(), token: token, log: log}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, Errorf(CodeNotFound, "no operation %s %s (is the visor older than this CLI?)", r.Method, r.URL.Path))
	})
	return s
}

// Handle attaches fn to op.
func Handle[Req, Resp any](s *Server, op Op[Req, Resp], fn func(context.Context, Req) (Resp, error)) {
	s.mux.HandleFunc(op.Method+" "+op.Path, func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if r.Method != http.MethodGet {
			body := http.MaxBytesReader(w, r.Body, MaxRequestBody)
			dec := json.NewDecoder(body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeError(w, Errorf(CodeBadRequest, "%s %s: bad request body: %v", op.Method, op.Path, err))
				return
			}
		}
		resp, err := fn(r.Context(), req)
		if err != nil {
			var ae *Error
			if !errors.As(err, &ae) {
				ae = &Error{Code: CodeInternal, Message: err.Error()}
			}
			s.log.Debug("admin call failed", zap.String("op", op.Path), zap.NamedError("err", err))
			writeError(w, ae)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
}

// ServeHTTP checks the token, then dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.token != "" {
		want := "Bearer " + s.token
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			writeError(w, Errorf(CodeUnauthorized, "missing or wrong admin token (pass --token-file with the visor's cli token file)"))
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// Serve answers on ln until ctx is done, then lets calls in progress finish
// for up to grace before closing them. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	hs := &http.Server{
		Handler:           s,
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
