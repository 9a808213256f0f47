package hypervisor

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
)

// The hypervisor answers from a cache of every visor's last known state,
// kept current by one watcher per link following the visor's event stream
// (admin.Events), so that a slow or gone visor never slows the list. Every
// change is pushed to the browsers (events.go).

// Visor states.
const (
	StateOnline     = "online"
	StateConnecting = "connecting" // linked, its state not read yet
	StateOffline    = "offline"
)

// VisorState is what GET /api/visors says of a visor.
type VisorState struct {
	PK         cipher.PubKey         `json:"pk"`
	State      string                `json:"state"`
	Label      string                `json:"label,omitempty"`
	Local      bool                  `json:"local,omitempty"` // the visor serving this hypervisor
	Info       *admin.Info           `json:"info,omitempty"`
	Transports []admin.TransportInfo `json:"transports"`
	Apps       []admin.AppInfo       `json:"apps"`
	Routes     int                   `json:"routes"`
	LatencyMS  float64               `json:"latency_ms"` // the link's round trip
	LinkedAt   time.Time             `json:"linked_at,omitzero"`
	FirstSeen  time.Time             `json:"first_seen"`
	LastSeen   time.Time             `json:"last_seen"`
	Error      string                `json:"error,omitempty"` // why it is not online, or what last failed
}

// Intervals of a watcher.
const (
	pingEvery    = 5 * time.Second  // link round trip
	infoEvery    = 30 * time.Second // GetInfo again (dmsg servers move)
	retryEvery   = 2 * time.Second  // after a failed read of the visor
	callTimeout  = 15 * time.Second
	seenEvery    = time.Minute // last_seen saved at most this often while online
	trafficKeep  = 300         // samples per transport (5 min at the visor's 1 s)
	trafficEvery = 900 * time.Millisecond
)

// sample is one reading of a transport's byte counters.
type sample struct {
	At       int64  `json:"t"` // Unix milliseconds
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"recv"`
}

type entry struct {
	st      VisorState
	tps     map[string]admin.TransportInfo
	apps    map[string]admin.AppInfo
	traffic map[string][]sample
	js      []byte // st as JSON; nil when it must be made again
	saved   time.Time
}

// cache holds every visor's state.
type cache struct {
	log   *zap.Logger
	store *store
	push  func(kind string, data []byte) // to the event hub

	mu     sync.RWMutex
	visors map[cipher.PubKey]*entry
	labels map[cipher.PubKey]string
	dirty  map[cipher.PubKey]bool
	wake   chan struct{} // a visor became dirty
}

func newCache(log *zap.Logger, st *store, push func(string, []byte)) (*cache, error) {
	c := &cache{log: log, store: st, push: push, visors: map[cipher.PubKey]*entry{},
		dirty: map[cipher.PubKey]bool{}, wake: make(chan struct{}, 1)}
	seen, err := st.visors()
	if err != nil {
		return nil, err
	}
	if c.labels, err = st.labels(); err != nil {
		return nil, err
	}
	for pk, sv := range seen {
		e := c.newEntry(pk)
		e.st.FirstSeen, e.st.LastSeen = sv.FirstSeen, sv.LastSeen
		if sv.Version != "" {
			e.st.Info = &admin.Info{PK: pk, Version: sv.Version}
		}
		c.visors[pk] = e
	}
	return c, nil
}

func (c *cache) newEntry(pk cipher.PubKey) *entry {
	return &entry{st: VisorState{PK: pk, State: StateOffline, Label: c.labels[pk]},
		tps: map[string]admin.TransportInfo{}, apps: map[string]admin.AppInfo{}, traffic: map[string][]sample{}}
}

// update changes pk's entry (made if new) under the lock and marks it for
// pushing.
func (c *cache) update(pk cipher.PubKey, fn func(e *entry)) {
	c.mu.Lock()
	e := c.visors[pk]
	if e == nil {
		e = c.newEntry(pk)
		c.visors[pk] = e
	}
	fn(e)
	e.js = nil
	c.dirty[pk] = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// flushGap is the least time between two pushes of the dirty visors: it
// merges the bursts of a visor's event stream.
const flushGap = 50 * time.Millisecond

// run pushes dirty visors until ctx ends.
func (c *cache) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		for _, js := range c.takeDirty() {
			c.push("visor", js)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(flushGap):
		}
	}
}

// takeDirty returns the dirty visors' JSON and clears the set.
func (c *cache) takeDirty() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]byte, 0, len(c.dirty))
	for pk := range c.dirty {
		if e := c.visors[pk]; e != nil {
			out = append(out, c.encode(e))
		}
	}
	clear(c.dirty)
	return out
}

// encode returns e's JSON, making it if needed. Call with mu held.
func (c *cache) encode(e *entry) []byte {
	if e.js == nil {
		st := e.st
		st.Transports = sortedValues(e.tps, func(a, b admin.TransportInfo) bool {
			return a.AgeSeconds > b.AgeSeconds || (a.AgeSeconds == b.AgeSeconds && a.ID < b.ID)
		})
		st.Apps = sortedValues(e.apps, func(a, b admin.AppInfo) bool { return a.Name < b.Name })
		e.js, _ = json.Marshal(st)
	}
	return e.js
}

func sortedValues[T any](m map[string]T, less func(a, b T) bool) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return less(out[i], out[j]) })
	return out
}

// list returns every visor's JSON, sorted by label then key.
func (c *cache) list() [][]byte {
	c.mu.Lock() // encode may fill e.js
	defer c.mu.Unlock()
	es := make([]*entry, 0, len(c.visors))
	for _, e := range c.visors {
		es = append(es, e)
	}
	sort.Slice(es, func(i, j int) bool {
		a, b := es[i].st, es[j].st
		if a.Label != b.Label {
			return a.Label != "" && (b.Label == "" || strings.ToLower(a.Label) < strings.ToLower(b.Label))
		}
		return a.PK.Less(b.PK)
	})
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = c.encode(e)
	}
	return out
}

// get returns one visor's JSON.
func (c *cache) get(pk cipher.PubKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.visors[pk]
	if e == nil {
		return nil, false
	}
	return c.encode(e), true
}

// known reports whether pk was ever seen, and whether it is online.
func (c *cache) known(pk cipher.PubKey) (seen, online bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.visors[pk]
	return e != nil, e != nil && e.st.State != StateOffline
}

// trafficOf returns pk's transports' byte samples.
func (c *cache) trafficOf(pk cipher.PubKey) (map[string][]sample, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.visors[pk]
	if e == nil {
		return nil, false
	}
	out := make(map[string][]sample, len(e.traffic))
	for id, s := range e.traffic {
		out[id] = slices.Clone(s)
	}
	return out, true
}

// setLabel stores pk's label and shows it.
func (c *cache) setLabel(pk cipher.PubKey, label string) error {
	if err := c.store.setLabel(pk, label); err != nil {
		return err
	}
	c.mu.Lock()
	if label == "" {
		delete(c.labels, pk)
	} else {
		c.labels[pk] = label
	}
	_, ok := c.visors[pk]
	c.mu.Unlock()
	if ok {
		c.update(pk, func(e *entry) { e.st.Label = label })
	}
	return nil
}

func (c *cache) labelsCopy() map[string]string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]string, len(c.labels))
	for pk, l := range c.labels {
		out[pk.Hex()] = l
	}
	return out
}

// forget removes an offline visor.
func (c *cache) forget(pk cipher.PubKey) error {
	c.mu.Lock()
	e := c.visors[pk]
	if e != nil && e.st.State != StateOffline {
		c.mu.Unlock()
		return admin.Errorf(admin.CodeConflict, "visor %s is %s: only an offline visor can be removed", pk.Short(), e.st.State)
	}
	delete(c.visors, pk)
	delete(c.dirty, pk)
	c.mu.Unlock()
	if e == nil {
		return admin.Errorf(admin.CodeNotFound, "no visor %s", pk.Short())
	}
	if err := c.store.deleteVisor(pk); err != nil {
		return err
	}
	js, _ := json.Marshal(map[string]string{"pk": pk.Hex()})
	c.push("visor-removed", js)
	return nil
}

// save records pk in the database (first and last seen, version).
func (c *cache) save(pk cipher.PubKey) {
	c.mu.Lock()
	e := c.visors[pk]
	if e == nil {
		c.mu.Unlock()
		return
	}
	sv := seenVisor{FirstSeen: e.st.FirstSeen, LastSeen: e.st.LastSeen}
	if e.st.Info != nil {
		sv.Version = e.st.Info.Version
	}
	e.saved = time.Now()
	c.mu.Unlock()
	if err := c.store.putVisor(pk, sv); err != nil {
		c.log.Warn("saving a visor", zap.String("pk", pk.Hex()), zap.Error(err))
	}
}

// watch keeps lk's visor's state until the link goes down.
func (c *cache) watch(ctx context.Context, lk *Link, local bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-lk.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	now := time.Now()
	c.update(lk.PK, func(e *entry) {
		e.st.State, e.st.Local, e.st.LinkedAt, e.st.LastSeen, e.st.Error = StateConnecting, local, lk.Since, now, ""
		if e.st.FirstSeen.IsZero() {
			e.st.FirstSeen = now
		}
	})
	c.save(lk.PK)
	go c.pingLoop(ctx, lk)
	for ctx.Err() == nil {
		err := c.follow(ctx, lk)
		if ctx.Err() != nil {
			break
		}
		if err == nil { // the stream ended without a word: the link is going, or the visor stopping
			err = errors.New("the visor ended its event stream")
		}
		c.log.Debug("reading a visor failed; again soon", zap.String("pk", lk.PK.Hex()), zap.Error(err))
		c.update(lk.PK, func(e *entry) {
			e.st.Error = err.Error()
			if e.st.Info == nil || e.st.State == StateConnecting {
				e.st.State = StateConnecting
			}
		})
		select {
		case <-ctx.Done():
		case <-time.After(retryEvery):
		}
	}
	c.update(lk.PK, func(e *entry) {
		e.st.State, e.st.LastSeen, e.st.LatencyMS = StateOffline, time.Now(), 0
		e.st.Error = "the link is down (the visor stopped, or lost its connection)"
	})
	c.save(lk.PK)
}

// follow reads the visor's info, then applies its event stream until it
// ends.
func (c *cache) follow(ctx context.Context, lk *Link) error {
	if err := c.readInfo(ctx, lk); err != nil {
		return err
	}
	fresh := true
	infoAt := time.Now()
	return admin.Follow(ctx, lk.Client, admin.Events, admin.Empty{}, func(ev admin.Event) error {
		if time.Since(infoAt) > infoEvery {
			infoAt = time.Now()
			go c.readInfo(ctx, lk)
		}
		c.update(lk.PK, func(e *entry) {
			if fresh { // the stream begins with the whole state
				fresh = false
				clear(e.tps)
				clear(e.apps)
				e.st.State, e.st.Error = StateOnline, ""
			}
			c.apply(e, ev)
			e.st.LastSeen = time.Now()
		})
		if time.Since(c.savedAt(lk.PK)) > seenEvery {
			c.save(lk.PK)
		}
		return nil
	})
}

func (c *cache) savedAt(pk cipher.PubKey) time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.visors[pk]; e != nil {
		return e.saved
	}
	return time.Time{}
}

// apply changes e by ev. Call with mu held.
func (c *cache) apply(e *entry, ev admin.Event) {
	switch ev.Kind {
	case admin.EventTransportUp, admin.EventTransport:
		if t := ev.Transport; t != nil {
			e.tps[t.ID] = *t
			s := e.traffic[t.ID]
			at := ev.Time.UnixMilli()
			if n := len(s); n == 0 || time.Duration(at-s[n-1].At)*time.Millisecond >= trafficEvery {
				if n >= trafficKeep {
					s = append(s[:0], s[n-trafficKeep+1:]...)
				}
				e.traffic[t.ID] = append(s, sample{At: at, Sent: t.Sent, Received: t.Received})
			}
		}
	case admin.EventTransportDown:
		if t := ev.Transport; t != nil {
			delete(e.tps, t.ID)
			delete(e.traffic, t.ID)
		}
	case admin.EventApp:
		if a := ev.App; a != nil {
			e.apps[a.Name] = *a
		}
	case admin.EventRoutes:
		e.st.Routes = ev.Routes
	}
}

// readInfo reads the visor's info into the cache.
func (c *cache) readInfo(ctx context.Context, lk *Link) error {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	info, err := admin.Call(cctx, lk.Client, admin.GetInfo, admin.Empty{})
	if err != nil {
		return err
	}
	if info.PK != lk.PK {
		return errors.New("the visor's info names another key")
	}
	c.update(lk.PK, func(e *entry) { e.st.Info = &info })
	return nil
}

// pingLoop measures the link's round trip until ctx ends.
func (c *cache) pingLoop(ctx context.Context, lk *Link) {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	for {
		rtt, err := lk.Ping()
		if err == nil && ctx.Err() == nil {
			ms := float64(rtt.Microseconds()) / 1000
			c.update(lk.PK, func(e *entry) { e.st.LatencyMS = ms })
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
