package hypervisor

import (
	"context"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/hvlink"
)

// Links accepts the visors that dial this hypervisor (dmsg port 46, see
// visor/hypervisors.go and docs/protocol.md "Hypervisor link") and keeps an
// admin client for each: every request opens a yamux stream on the visor's
// link. A visor that reconnects replaces its old link.
type Links struct {
	log    *zap.Logger
	onLink func(*Link)

	mu    sync.Mutex // guards links
	links map[cipher.PubKey]*Link
}

// Link is one visor's link.
type Link struct {
	PK     cipher.PubKey
	Client *admin.Client
	Since  time.Time
	sess   *yamux.Session // nil for a visor in this process
	done   chan struct{}  // closed when the link is down
}

// Ping measures the link's round trip (0 for a visor in this process).
func (k *Link) Ping() (time.Duration, error) {
	if k.sess == nil {
		return 0, nil
	}
	return k.sess.Ping()
}

// Done is closed when the link goes down.
func (k *Link) Done() <-chan struct{} { return k.done }

// NewLinks returns an empty set of links. onLink (may be nil) is called,
// in its own goroutine, with every link that comes up.
func NewLinks(log *zap.Logger, onLink func(*Link)) *Links {
	if log == nil {
		log = zap.NewNop()
	}
	if onLink == nil {
		onLink = func(*Link) {}
	}
	return &Links{log: log, onLink: onLink, links: map[cipher.PubKey]*Link{}}
}

// AddLocal links the visor pk served in this process through c, until ctx
// ends.
func (l *Links) AddLocal(ctx context.Context, pk cipher.PubKey, c *admin.Client) {
	lk := &Link{PK: pk, Client: c, Since: time.Now(), done: make(chan struct{})}
	l.add(lk)
	go func() {
		<-ctx.Done()
		l.remove(lk)
	}()
}

// add makes lk pk's link, closing an older one.
func (l *Links) add(lk *Link) {
	l.mu.Lock()
	if old := l.links[lk.PK]; old != nil && old.sess != nil {
		old.sess.Close()
	}
	l.links[lk.PK] = lk
	l.mu.Unlock()
	l.log.Info("visor linked", zap.String("pk", lk.PK.Hex()))
	go l.onLink(lk)
}

// remove forgets lk (if it is still its visor's link) and marks it done.
func (l *Links) remove(lk *Link) {
	lk.Client.Close()
	l.mu.Lock()
	if l.links[lk.PK] == lk {
		delete(l.links, lk.PK)
	}
	l.mu.Unlock()
	close(lk.done)
	l.log.Info("visor link down", zap.String("pk", lk.PK.Hex()))
}

// Serve accepts visors' links on ln (a dmsg listener on port 46, or an
// hvlink.Listener for direct links) until ctx
// ends or ln fails; then it closes every link.
func (l *Links) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer func() {
		l.mu.Lock()
		for _, lk := range l.links {
			if lk.sess != nil {
				lk.sess.Close()
			}
		}
		l.mu.Unlock()
		wg.Wait()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		pk, ok := hvlink.RemoteKey(c.RemoteAddr())
		if !ok {
			c.Close()
			continue
		}
		sess, err := yamux.Client(c, hvlink.Yamux())
		if err != nil {
			c.Close()
			continue
		}
		lk := &Link{PK: pk, sess: sess, Since: time.Now(), done: make(chan struct{}),
			Client: admin.NewClientFunc(pk.Short(), func(context.Context) (net.Conn, error) { return sess.Open() }, "")}
		l.add(lk)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-sess.CloseChan()
			l.remove(lk)
		}()
	}
}

// Client is the admin client of the linked visor pk (nil if not linked).
func (l *Links) Client(pk cipher.PubKey) *admin.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lk := l.links[pk]; lk != nil {
		return lk.Client
	}
	return nil
}

// Visors lists the linked visors' keys, sorted.
func (l *Links) Visors() []cipher.PubKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]cipher.PubKey, 0, len(l.links))
	for pk := range l.links {
		out = append(out, pk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}
