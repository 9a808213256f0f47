package hypervisor

import (
	"context"
	"io"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
)

// Links accepts the visors that dial this hypervisor (dmsg port 46, see
// visor/hypervisors.go and docs/protocol.md "Hypervisor link") and keeps an
// admin client for each: every request opens a yamux stream on the visor's
// link. A visor that reconnects replaces its old link.
type Links struct {
	log *zap.Logger

	mu    sync.Mutex // guards links
	links map[cipher.PubKey]*link
}

type link struct {
	sess   *yamux.Session
	client *admin.Client
	since  time.Time
}

// NewLinks returns an empty set of links.
func NewLinks(log *zap.Logger) *Links {
	if log == nil {
		log = zap.NewNop()
	}
	return &Links{log: log, links: map[cipher.PubKey]*link{}}
}

// Serve accepts visors' links on ln (a dmsg listener on port 46) until ctx
// ends or ln fails; then it closes every link.
func (l *Links) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer func() {
		l.mu.Lock()
		for _, lk := range l.links {
			lk.sess.Close()
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
		addr, ok := c.RemoteAddr().(dmsg.Addr)
		if !ok {
			c.Close()
			continue
		}
		cfg := yamux.DefaultConfig()
		cfg.KeepAliveInterval = 5 * time.Second
		cfg.LogOutput, cfg.Logger = io.Discard, nil
		sess, err := yamux.Client(c, cfg)
		if err != nil {
			c.Close()
			continue
		}
		lk := &link{sess: sess, since: time.Now(), client: admin.NewClientFunc(addr.PK.Hex(), func(context.Context) (net.Conn, error) { return sess.Open() }, "")}
		l.mu.Lock()
		if old := l.links[addr.PK]; old != nil {
			old.sess.Close()
		}
		l.links[addr.PK] = lk
		l.mu.Unlock()
		l.log.Info("visor linked", zap.String("pk", addr.PK.Hex()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-sess.CloseChan()
			lk.client.Close()
			l.mu.Lock()
			if l.links[addr.PK] == lk {
				delete(l.links, addr.PK)
			}
			l.mu.Unlock()
			l.log.Info("visor link down", zap.String("pk", addr.PK.Hex()))
		}()
	}
}

// Client is the admin client of the linked visor pk (nil if not linked).
func (l *Links) Client(pk cipher.PubKey) *admin.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lk := l.links[pk]; lk != nil {
		return lk.client
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
