package dmsgdisc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
)

// ErrNotFound: the discovery has no entry for the key.
var ErrNotFound = errors.New("no dmsg discovery entry")

// Client reads and publishes entries. It checks every entry it reads: the
// discovery is not trusted to vouch for anything.
type Client struct {
	c *httpauth.Client

	mu  sync.Mutex // guards seq
	seq uint64     // last sequence we published
}

// NewClient returns a client of the discovery at url, publishing as sk.
func NewClient(url string, sk cipher.SecKey) *Client {
	return &Client{c: httpauth.NewClient(url, sk)}
}

// URL is the discovery's address.
func (c *Client) URL() string { return c.c.Base }

// Close releases idle connections.
func (c *Client) Close() { c.c.Close() }

// Entry returns pk's verified entry.
func (c *Client) Entry(ctx context.Context, pk cipher.PubKey) (*Entry, error) {
	var se SignedEntry
	err := c.c.Call(ctx, http.MethodGet, "/v1/entries/"+pk.Hex(), false, nil, &se)
	if httpauth.IsNotFound(err) {
		return nil, fmt.Errorf("%w for %s (is that visor online and using the same dmsg discovery?)", ErrNotFound, pk.Short())
	}
	if err != nil {
		return nil, err
	}
	e, err := se.Open()
	if err != nil {
		return nil, err
	}
	if e.PK != pk {
		return nil, fmt.Errorf("%w: asked for %s, got an entry for %s", ErrInvalid, pk.Short(), e.PK.Short())
	}
	return e, nil
}

// Servers returns the verified server entries.
func (c *Client) Servers(ctx context.Context) ([]*Entry, error) {
	var list []SignedEntry
	if err := c.c.Call(ctx, http.MethodGet, "/v1/servers", false, nil, &list); err != nil {
		return nil, err
	}
	out := make([]*Entry, 0, len(list))
	for _, se := range list {
		if e, err := se.Open(); err == nil && e.Server != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// Publish signs and posts our entry: fill sets its client or server part;
// sequence and timestamp are set here. A sequence conflict (after a restart)
// is resolved by continuing above the stored one.
func (c *Client) Publish(ctx context.Context, fill func(e *Entry)) error {
	pk := c.c.SK.PubKey()
	for attempt := 0; attempt < 2; attempt++ {
		c.mu.Lock()
		// Sequences follow the clock, so a restarted client is usually
		// already above what it published before.
		c.seq = max(c.seq+1, uint64(time.Now().UnixMilli()))
		e := &Entry{PK: pk, Sequence: c.seq, Timestamp: time.Now().UnixMilli()}
		c.mu.Unlock()
		fill(e)
		se, err := Sign(e, c.c.SK)
		if err != nil {
			return err
		}
		err = c.c.Call(ctx, http.MethodPost, "/v1/entries", false, se, nil)
		var sErr *httpauth.StatusError
		if !errors.As(err, &sErr) || sErr.Status != http.StatusConflict {
			return err
		}
		old, gerr := c.Entry(ctx, pk)
		if gerr != nil {
			return err
		}
		c.mu.Lock()
		c.seq = old.Sequence
		c.mu.Unlock()
	}
	return fmt.Errorf("publishing the dmsg entry: sequence conflict persists")
}

// Delete removes our entry.
func (c *Client) Delete(ctx context.Context) error {
	return c.c.Call(ctx, http.MethodDelete, "/v1/entries/"+c.c.SK.PubKey().Hex(), true, nil, nil)
}
