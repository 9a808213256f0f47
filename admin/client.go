package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrUnreachable is wrapped by errors from calls that could not reach the
// visor at all (nothing listening, no such socket, permission denied).
var ErrUnreachable = errors.New("cannot reach the visor")

// Client calls a visor's admin API.
type Client struct {
	addr  string // what the user named, for errors
	base  string // URL prefix
	token string
	hc    *http.Client
}

// NewClient returns a client for the visor at addr (a unix socket path or a
// TCP host:port). token is required for TCP and ignored for a socket.
func NewClient(addr, token string) (*Client, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if network == "tcp" {
		return newClient(addr, "http://"+address, token, nil), nil
	}
	var d net.Dialer
	dial := func(ctx context.Context) (net.Conn, error) {
		if err := checkSocket(address); err != nil {
			return nil, err
		}
		return d.DialContext(ctx, "unix", address)
	}
	return newClient(addr, "http://visor", "", dial), nil
}

// NewClientFunc returns a client whose connections come from dial (the
// hypervisor uses it to reach visors over dmsg).
func NewClientFunc(name string, dial func(ctx context.Context) (net.Conn, error), token string) *Client {
	return newClient(name, "http://visor", token, dial)
}

func newClient(addr, base, token string, dial func(context.Context) (net.Conn, error)) *Client {
	tr := &http.Transport{
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 0, // operations bound themselves through ctx
		DisableCompression:    true,
	}
	if dial != nil {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }
	}
	return &Client{addr: addr, base: base, token: token, hc: &http.Client{Transport: tr}}
}

// Addr is the address the client was made for.
func (c *Client) Addr() string { return c.addr }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Call performs op. Failures the visor reports are *Error; failures to reach
// it wrap ErrUnreachable.
func Call[Req, Resp any](ctx context.Context, c *Client, op Op[Req, Resp], req Req) (Resp, error) {
	var resp Resp
	hresp, err := c.do(ctx, op.Method, op.Path, req)
	if err != nil {
		return resp, err
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, 64<<20))
	if err != nil {
		return resp, fmt.Errorf("%s %s: reading the answer: %w", op.Method, op.Path, err)
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		return resp, fmt.Errorf("%s %s: bad answer: %w", op.Method, op.Path, err)
	}
	return resp, nil
}

// do sends one request and returns a 200 answer, or the error: an *Error
// the visor answered, a timeout, or ErrUnreachable.
func (c *Client) do(ctx context.Context, method, path string, req any) (*http.Response, error) {
	return c.send(ctx, method, path, req, nil)
}

// send is do with extra headers; it also returns a 101 answer (an upgrade).
func (c *Client) send(ctx context.Context, method, path string, req any, hdr http.Header) (*http.Response, error) {
	var body io.Reader
	if method != http.MethodGet {
		b, err := json.Marshal(req)
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		hreq.Header[k] = v
	}
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return nil, &Error{Code: CodeTimeout, Message: fmt.Sprintf("%s %s: the visor at %s did not answer in time", method, path, c.addr)}
		}
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, c.addr, stripURL(err))
	}
	if hresp.StatusCode == http.StatusOK || hresp.StatusCode == http.StatusSwitchingProtocols && hdr.Get("Upgrade") != "" {
		return hresp, nil
	}
	defer hresp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	var eb errorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
		return nil, eb.Error
	}
	return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("%s %s: HTTP %d: %s", method, path, hresp.StatusCode, strings.TrimSpace(string(data)))}
}

// stripURL drops net/http's `Get "http://visor/v1/info":` prefix, which names
// a URL the user never typed.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Forward sends r's method and body to path on the visor and returns its
// answer whatever the status (the hypervisor mounts the API this way).
// Failures to reach the visor wrap ErrUnreachable.
func (c *Client) Forward(r *http.Request, path string) (*http.Response, error) {
	var body io.Reader
	if r.Method != http.MethodGet && r.Body != nil {
		body = io.LimitReader(r.Body, MaxRequestBody+1)
	}
	hreq, err := http.NewRequestWithContext(r.Context(), r.Method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		hreq.Header.Set("Content-Type", ct)
	}
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}
	hresp, err := c.hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrUnreachable, c.addr, stripURL(err))
	}
	return hresp, nil
}
