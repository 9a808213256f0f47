package sd

import (
	"context"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
)

// Client talks to a service discovery as one visor. Entries it reads are
// verified: the discovery is not trusted to vouch for them.
type Client struct {
	c  *httpauth.Client
	sk cipher.SecKey
}

// NewClient returns a client of the discovery at base, signing as sk.
func NewClient(base string, sk cipher.SecKey) *Client {
	return &Client{c: httpauth.NewClient(base, sk), sk: sk}
}

// Close releases idle connections.
func (c *Client) Close() { c.c.Close() }

// Register signs e (its key must be the client's) with the time now and
// publishes it, or refreshes it. It returns how soon to register again (a
// third of the service's time to live, at most HeartbeatInterval).
func (c *Client) Register(ctx context.Context, e Entry) (time.Duration, error) {
	se, err := e.Sign(c.sk, time.Now())
	if err != nil {
		return 0, err
	}
	var r Registered
	if err := c.c.Call(ctx, http.MethodPost, "/v1/services", false, se, &r); err != nil {
		return 0, err
	}
	again := time.Duration(r.TTLMS) * time.Millisecond / 3
	if again <= 0 || again > HeartbeatInterval {
		again = HeartbeatInterval
	}
	return max(again, 100*time.Millisecond), nil
}

// Deregister removes the client's entry of type typ on port.
func (c *Client) Deregister(ctx context.Context, typ string, port uint16) error {
	return c.c.Call(ctx, http.MethodDelete, "/v1/services/"+url.PathEscape(typ)+"/"+c.sk.PubKey().Hex()+"/"+strconv.Itoa(int(port)), true, nil, nil)
}

// List returns the verified entries of type typ ("": every type), of
// country if it is not "".
func (c *Client) List(ctx context.Context, typ, country string) ([]SignedEntry, error) {
	q := url.Values{}
	if typ != "" {
		q.Set("type", typ)
	}
	if country != "" {
		q.Set("country", country)
	}
	var all []SignedEntry
	if err := c.c.Call(ctx, http.MethodGet, "/v1/services?"+q.Encode(), false, nil, &all); err != nil {
		return nil, err
	}
	return verified(all), nil
}

// verified keeps the entries whose signatures verify, checked on every
// core (a signature costs a fraction of a millisecond; lists run to
// thousands).
func verified(all []SignedEntry) []SignedEntry {
	ok := make([]bool, len(all))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(all)/64))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(all); i += workers {
				ok[i] = all[i].Verify() == nil
			}
		}()
	}
	wg.Wait()
	out := all[:0]
	for i := range all {
		if ok[i] {
			out = append(out, all[i])
		}
	}
	return out
}
