package tpdisc

import (
	"context"
	"net/http"
	"net/url"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
)

// Client talks to a transport discovery as one visor. Entries it reads are
// verified: the discovery is not trusted to vouch for them.
type Client struct {
	c *httpauth.Client
}

// NewClient returns a client of the discovery at base, signing as sk.
func NewClient(base string, sk cipher.SecKey) *Client {
	return &Client{c: httpauth.NewClient(base, sk)}
}

// URL is the discovery's address.
func (c *Client) URL() string { return c.c.Base }

// Close releases idle connections.
func (c *Client) Close() { c.c.Close() }

// Register publishes a transport both edges signed.
func (c *Client) Register(ctx context.Context, se *SignedEntry) error {
	return c.c.Call(ctx, http.MethodPost, "/v1/transports", false, se, nil)
}

// Heartbeat keeps a registered transport alive.
func (c *Client) Heartbeat(ctx context.Context, id ID) error {
	return c.c.Call(ctx, http.MethodPost, "/v1/transports/"+id.String()+"/heartbeat", true, nil, nil)
}

// Deregister removes a transport.
func (c *Client) Deregister(ctx context.Context, id ID) error {
	return c.c.Call(ctx, http.MethodDelete, "/v1/transports/"+id.String(), true, nil, nil)
}

// Entry returns the transport with id.
func (c *Client) Entry(ctx context.Context, id ID) (*SignedEntry, error) {
	var se SignedEntry
	if err := c.c.Call(ctx, http.MethodGet, "/v1/transports/"+id.String(), false, nil, &se); err != nil {
		return nil, err
	}
	if err := se.Verify(); err != nil {
		return nil, err
	}
	return &se, nil
}

// ByEdge returns the verified transports of pk.
func (c *Client) ByEdge(ctx context.Context, pk cipher.PubKey) ([]SignedEntry, error) {
	return c.list(ctx, "?edge="+url.QueryEscape(pk.Hex()))
}

// All returns every verified transport.
func (c *Client) All(ctx context.Context) ([]SignedEntry, error) { return c.list(ctx, "") }

// AllUnverified returns every transport as the service lists it, without
// checking the signatures: for a reader that verifies each entry once and
// keeps the result (the route finder).
func (c *Client) AllUnverified(ctx context.Context) ([]SignedEntry, error) {
	var all []SignedEntry
	if err := c.c.Call(ctx, http.MethodGet, "/v1/transports", false, nil, &all); err != nil {
		return nil, err
	}
	return all, nil
}

func (c *Client) list(ctx context.Context, query string) ([]SignedEntry, error) {
	var all []SignedEntry
	if err := c.c.Call(ctx, http.MethodGet, "/v1/transports"+query, false, nil, &all); err != nil {
		return nil, err
	}
	out := all[:0]
	for i := range all {
		if all[i].Verify() == nil {
			out = append(out, all[i])
		}
	}
	return out, nil
}
