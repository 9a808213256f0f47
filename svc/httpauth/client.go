package httpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/acceptor"
)

// maxAnswer bounds what a client reads from a service.
const maxAnswer = 16 << 20

// ErrUnreachable wraps failures to reach a service at all.
var ErrUnreachable = errors.New("service unreachable")

// StatusError is a service's error answer.
type StatusError struct {
	Service string // base URL
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s answered %d: %s", e.Service, e.Status, e.Message)
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}

// Client calls one service, signing requests with SK when asked.
type Client struct {
	Base string // e.g. "http://127.0.0.1:9091"
	SK   cipher.SecKey
	HTTP *http.Client
}

// NewClient returns a client of the service at base, signing with sk.
func NewClient(base string, sk cipher.SecKey) *Client {
	return &Client{
		Base: strings.TrimRight(base, "/"),
		SK:   sk,
		HTTP: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}},
	}
}

// Call sends in (JSON; nil for none) to method path, signed if signed is
// true, and decodes the answer into out (nil to ignore it).
func (c *Client) Call(ctx context.Context, method, path string, signed bool, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if signed {
		if err := Sign(req, body, c.SK); err != nil {
			return err
		}
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, c.Base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, c.Base+path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		return &StatusError{Service: c.Base, Status: resp.StatusCode, Message: msg}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, c.Base+path, err)
	}
	return nil
}

// Close releases idle connections.
func (c *Client) Close() { c.HTTP.CloseIdleConnections() }

// ServerLimits bound what one client can hold of a service. Zero fields
// take the defaults.
type ServerLimits struct {
	// ReadTimeout bounds reading one whole request, body included
	// (default 15 s): a slow-body client is cut off.
	ReadTimeout time.Duration
	// PerClient bounds the connections open at once from one address (an
	// IPv6 address counts by its /64; default 64); more are closed at once.
	PerClient int
	// Total bounds the connections open at once (default 8192).
	Total int
}

// Defaults of ServerLimits.
const (
	DefaultReadTimeout = 15 * time.Second
	DefaultPerClient   = 64
	DefaultTotal       = 8192
)

// Serve answers h on ln until ctx ends, with the default ServerLimits.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	return ServeLimited(ctx, ln, h, ServerLimits{})
}

// ServeLimited answers h on ln until ctx ends, then shuts down (waiting up
// to a second for calls in progress: service calls are short, and a slow
// client must not hold a stop up). It closes ln. Headers must arrive within
// 5 s and a whole request within lim.ReadTimeout; an idle connection is
// closed after a minute; accept errors from exhausted resources are waited
// out.
func ServeLimited(ctx context.Context, ln net.Listener, h http.Handler, lim ServerLimits) error {
	if lim.ReadTimeout <= 0 {
		lim.ReadTimeout = DefaultReadTimeout
	}
	if lim.PerClient <= 0 {
		lim.PerClient = DefaultPerClient
	}
	if lim.Total <= 0 {
		lim.Total = DefaultTotal
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(5*time.Second, lim.ReadTimeout),
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.ReadTimeout + 15*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() {
		errc <- hs.Serve(acceptor.Listener(ln, acceptor.Limits{PerSource: lim.PerClient, Total: lim.Total}))
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return nil
}

// ReadJSON decodes r's body (at most max bytes) into v, refusing unknown
// fields; on failure it answers 400 and returns false.
func ReadJSON(w http.ResponseWriter, r *http.Request, max int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, "bad request body: "+err.Error())
		return false
	}
	return true
}

// PathPK parses the request's {pk} path value, answering 400 if it is not a
// public key.
func PathPK(w http.ResponseWriter, r *http.Request) (cipher.PubKey, bool) {
	pk, err := cipher.ParsePubKey(r.PathValue("pk"))
	if err != nil {
		WriteError(w, http.StatusBadRequest, err.Error())
		return pk, false
	}
	return pk, true
}
