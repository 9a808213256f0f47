package ar

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
)

// Client talks to an address resolver as one visor.
type Client struct {
	c *httpauth.Client
}

// NewClient returns a client of the resolver at base, signing as sk.
func NewClient(base string, sk cipher.SecKey) *Client {
	return &Client{c: httpauth.NewClient(base, sk)}
}

// URL is the resolver's address.
func (c *Client) URL() string { return c.c.Base }

// Close releases idle connections.
func (c *Client) Close() { c.c.Close() }

// UDPAddr is where the resolver takes BINDs: its HTTP host and port, on UDP.
func (c *Client) UDPAddr() (*net.UDPAddr, error) {
	u, err := url.Parse(c.c.Base)
	if err != nil {
		return nil, err
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.ResolveUDPAddr("udp", net.JoinHostPort(u.Hostname(), port))
}

// BindSTCPR announces that we accept stcpr on port (and on these LAN
// addresses), and returns the address the resolver saw.
func (c *Client) BindSTCPR(ctx context.Context, port uint16, localAddrs []string) (string, error) {
	var res Resolved
	err := c.c.Call(ctx, http.MethodPost, "/v1/bind/stcpr", true, BindRequest{Port: port, LocalAddrs: localAddrs}, &res)
	return res.Addr, err
}

// UnbindSTCPR withdraws our stcpr address.
func (c *Client) UnbindSTCPR(ctx context.Context) error {
	return c.c.Call(ctx, http.MethodDelete, "/v1/bind/stcpr", true, nil, nil)
}

// ResolveSTCPR returns where pk accepts stcpr.
func (c *Client) ResolveSTCPR(ctx context.Context, pk cipher.PubKey) (Resolved, error) {
	var res Resolved
	err := c.c.Call(ctx, http.MethodGet, "/v1/resolve/stcpr/"+pk.Hex(), true, nil, &res)
	if err != nil {
		return res, fmt.Errorf("resolve stcpr address of %s: %w", pk.Short(), err)
	}
	return res, nil
}

// ResolveSUDPH returns pk's UDP address and makes the resolver tell pk to
// punch towards us (we must have bound sudph over UDP first).
func (c *Client) ResolveSUDPH(ctx context.Context, pk cipher.PubKey) (string, error) {
	var res Resolved
	err := c.c.Call(ctx, http.MethodGet, "/v1/resolve/sudph/"+pk.Hex(), true, nil, &res)
	if err != nil {
		return "", fmt.Errorf("resolve sudph address of %s: %w", pk.Short(), err)
	}
	return res.Addr, nil
}
