// Package httpauth signs and verifies requests to skywire's services, so a
// service knows which visor key made a request and that nobody changed or
// replayed it.
//
// Headers (docs/protocol.md, "Signed requests"):
//
//	SW-PK     the signer's public key (66 hex)
//	SW-Time   unix time in milliseconds (decimal)
//	SW-Nonce  16 random bytes (32 hex)
//	SW-Sig    signature (130 hex) of SHA-256 of
//	          "skywire-httpauth/1\n" METHOD "\n" REQUEST-URI "\n" SW-Time "\n" SW-Nonce "\n" hex(SHA-256(body))
//
// A service accepts a request only if the signature verifies, SW-Time is
// within Window of its clock, and the (key, nonce) pair has not been seen
// within the window. Unlike Skywire's scheme there is no per-key counter to
// fetch first, and method and path are covered.
package httpauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/replay"
	"github.com/skyfleet/skywire/svc/store"
)

// Header names.
const (
	HeaderPK    = "SW-PK"
	HeaderTime  = "SW-Time"
	HeaderNonce = "SW-Nonce"
	HeaderSig   = "SW-Sig"
)

const domain = "skywire-httpauth/1\n"

// Window is how far a request's time may be from the service's clock.
const Window = 30 * time.Second

// Errors a verification returns.
var (
	ErrMissing  = errors.New("request is not signed (SW-PK, SW-Time, SW-Nonce and SW-Sig are required)")
	ErrStale    = errors.New("request time is too far from the service's clock (check the visor's clock)")
	ErrReplayed = errors.New("request was already seen (replayed)")
	ErrBadSig   = errors.New("request signature does not verify")
	ErrBusy     = errors.New("too many signed requests in flight; try again")
)

// digest is what gets signed.
func digest(method, uri, ts, nonce string, body []byte) [32]byte {
	bh := sha256.Sum256(body)
	var b bytes.Buffer
	b.WriteString(domain)
	b.WriteString(method)
	b.WriteByte('\n')
	b.WriteString(uri)
	b.WriteByte('\n')
	b.WriteString(ts)
	b.WriteByte('\n')
	b.WriteString(nonce)
	b.WriteByte('\n')
	b.WriteString(hex.EncodeToString(bh[:]))
	return sha256.Sum256(b.Bytes())
}

// Sign adds the signature headers to req, whose body is body.
func Sign(req *http.Request, body []byte, sk cipher.SecKey) error {
	return signAt(req, body, sk, time.Now())
}

func signAt(req *http.Request, body []byte, sk cipher.SecKey, at time.Time) error {
	var n [16]byte
	rand.Read(n[:])
	nonce := hex.EncodeToString(n[:])
	ts := strconv.FormatInt(at.UnixMilli(), 10)
	sig, err := cipher.SignHash(sk, digest(req.Method, req.URL.RequestURI(), ts, nonce, body))
	if err != nil {
		return err
	}
	req.Header.Set(HeaderPK, sk.PubKey().Hex())
	req.Header.Set(HeaderTime, ts)
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSig, sig.Hex())
	return nil
}

// Verifier checks signed requests and remembers nonces for the window.
type Verifier struct {
	now    func() time.Time
	seen   *replay.Cache[nonceKey]
	shared store.Firster // nil: this process alone serves the service
}

type nonceKey struct {
	pk    cipher.PubKey
	nonce [16]byte
}

// NewVerifier returns a verifier whose replay cache holds up to maxNonces
// entries (each lives 2×Window).
func NewVerifier(maxNonces int) *Verifier {
	return &Verifier{now: time.Now, seen: replay.New[nonceKey](maxNonces, 2*Window)}
}

// ShareNonces makes the verifier also record nonces in s when s is shared
// by several instances of the service (a store.Firster: Redis), so that a
// request replayed to another instance behind a load balancer is refused
// too. Other stores are one process's, and the local cache is enough.
func (v *Verifier) ShareNonces(s store.Store) {
	if f, ok := s.(store.Firster); ok {
		v.shared = f
	}
}

// Verify checks the request's signature headers against body and returns the
// signer's key.
func (v *Verifier) Verify(r *http.Request, body []byte) (cipher.PubKey, error) {
	pkHex, ts, nonceHex, sigHex := r.Header.Get(HeaderPK), r.Header.Get(HeaderTime), r.Header.Get(HeaderNonce), r.Header.Get(HeaderSig)
	if pkHex == "" || ts == "" || nonceHex == "" || sigHex == "" {
		return cipher.PubKey{}, ErrMissing
	}
	pk, err := cipher.ParsePubKey(pkHex)
	if err != nil {
		return cipher.PubKey{}, fmt.Errorf("%s: %w", HeaderPK, err)
	}
	ms, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return cipher.PubKey{}, fmt.Errorf("%s: not a number", HeaderTime)
	}
	now := v.now()
	if d := now.Sub(time.UnixMilli(ms)); d > Window || d < -Window {
		return cipher.PubKey{}, ErrStale
	}
	var nk nonceKey
	nk.pk = pk
	if len(nonceHex) != 32 {
		return cipher.PubKey{}, fmt.Errorf("%s: want 32 hex characters", HeaderNonce)
	}
	if _, err := hex.Decode(nk.nonce[:], []byte(nonceHex)); err != nil {
		return cipher.PubKey{}, fmt.Errorf("%s: not hex", HeaderNonce)
	}
	sig, err := cipher.ParseSig(sigHex)
	if err != nil {
		return cipher.PubKey{}, fmt.Errorf("%s: %w", HeaderSig, err)
	}
	if err := cipher.VerifyHash(pk, digest(r.Method, r.URL.RequestURI(), ts, nonceHex, body), sig); err != nil {
		return cipher.PubKey{}, ErrBadSig
	}
	// Only a verified request may take a place in the cache.
	switch err := v.seen.Add(nk, now); {
	case errors.Is(err, replay.ErrReplayed):
		return cipher.PubKey{}, ErrReplayed
	case err != nil:
		return cipher.PubKey{}, ErrBusy
	}
	if v.shared != nil {
		first, err := v.shared.First(r.Context(), "nonce/"+pk.Hex()+nonceHex, 2*Window)
		switch {
		case err != nil:
			return cipher.PubKey{}, fmt.Errorf("%w (%v)", ErrBusy, err)
		case !first:
			return cipher.PubKey{}, ErrReplayed
		}
	}
	return pk, nil
}

type ctxKey struct{}

// FromContext returns the key that signed the request being served.
func FromContext(ctx context.Context) (cipher.PubKey, bool) {
	pk, ok := ctx.Value(ctxKey{}).(cipher.PubKey)
	return pk, ok
}

// Require wraps h so that it only sees verified requests (bodies up to
// maxBody bytes); the signer's key is in the context (FromContext).
// Failures answer 401 (403 for nothing here) with a JSON error.
func (v *Verifier) Require(maxBody int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			WriteError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", maxBody))
			return
		}
		pk, err := v.Verify(r, body)
		if err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, ErrBusy) {
				status = http.StatusServiceUnavailable
			}
			WriteError(w, status, err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, pk)))
	})
}

// WriteError answers {"error": message} with status, the error form of every
// skywire service.
func WriteError(w http.ResponseWriter, status int, message string) {
	WriteJSON(w, status, errorBody{Error: message})
}

// WriteStoreError answers a store's failure to keep an entry: 503 when the
// service holds as many entries as its operator allows (those registered
// go on; new ones wait), 500 for anything else.
func WriteStoreError(w http.ResponseWriter, service string, err error) {
	if errors.Is(err, store.ErrFull) {
		WriteError(w, http.StatusServiceUnavailable, fmt.Sprintf("the %s is full: it holds as many entries as its operator allows (--max-entries); entries already here are kept, new ones are refused until some expire", service))
		return
	}
	WriteError(w, http.StatusInternalServerError, fmt.Sprintf("the %s could not store the entry: %v", service, err))
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error string `json:"error"`
}

// HandleHealth answers GET /health on mux for the service named service.
func HandleHealth(mux *http.ServeMux, service string) {
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": service})
	})
}

// Fresh answers 400 and reports false unless signed (an entry's
// timestamp) is within skew of now.
func Fresh(w http.ResponseWriter, now, signed time.Time, skew time.Duration) bool {
	if d := now.Sub(signed); d > skew || d < -skew {
		WriteError(w, http.StatusBadRequest, fmt.Sprintf("entry timestamp is %v from the service's clock (at most %v): check the clock", d.Round(time.Second), skew))
		return false
	}
	return true
}

// ReadVerified reads a JSON body of at most max bytes into v and checks it
// with v.Verify, answering 400 with the reason if it does not verify.
func ReadVerified(w http.ResponseWriter, r *http.Request, max int64, v interface{ Verify() error }) bool {
	if !ReadJSON(w, r, max, v) {
		return false
	}
	if err := v.Verify(); err != nil {
		WriteError(w, http.StatusBadRequest, err.Error())
		return false
	}
	return true
}
