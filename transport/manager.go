package transport

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/changes"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// Defaults.
const (
	DefaultKeepalive     = 2 * time.Second
	DefaultMaxTransports = 1024
	// DefaultDialTimeout bounds a dial that has no deadline of its own.
	DefaultDialTimeout = 20 * time.Second
	maxRedialBackoff   = 30 * time.Second
)

// Config configures a Manager.
type Config struct {
	SK cipher.SecKey
	// Networks are the available types.
	Networks []Network
	// Discovery, if set, is where dialled transports are registered.
	Discovery *tpdisc.Client
	// Handler receives every packet that is not the transport's own
	// (route-0 ping, pong and keepalive), on the transport's reader
	// goroutine; the packet is valid until it returns. Nil drops them.
	Handler func(*Transport, Packet)
	// OnClose, if set, is called (once) when a transport has closed.
	OnClose func(*Transport)
	// Keepalive is the ping interval (DefaultKeepalive); a transport that
	// hears nothing for three intervals closes.
	Keepalive time.Duration
	// MaxTransports bounds the transports (DefaultMaxTransports).
	MaxTransports int
	// MaxInbound, if set, bounds the transports other visors dial here (a
	// public visor's transport.max_public_peers); the next is refused as
	// busy, and its dialer tries another.
	MaxInbound int
	// Heartbeat is how often a dialled transport's discovery entry is
	// refreshed (tpdisc.HeartbeatInterval).
	Heartbeat time.Duration
	// WriteTimeout closes a transport whose peer takes no data for this
	// long (DefaultWriteTimeout).
	WriteTimeout time.Duration
	Log          *zap.Logger
}

// Persistent names a transport to keep up.
type Persistent struct {
	PK   cipher.PubKey
	Type Type
}

type key struct {
	pk  cipher.PubKey
	typ Type
}

type dialState struct {
	done chan struct{}
	tp   *Transport
	err  error
}

// Manager owns a visor's transports.
type Manager struct {
	cfg      Config
	pk       cipher.PubKey
	log      *zap.Logger
	networks map[Type]Network

	mu         sync.Mutex // guards tps, dialing, persistent, installed, accepting, closed
	tps        map[key]*Transport
	dialing    map[key]*dialState
	persistent map[key]bool
	installed  chan struct{} // closed and replaced whenever a transport is installed
	accepting  int           // accepted but not yet installed (counted against MaxTransports)
	closed     bool
	gone       map[Type]Totals // what closed transports carried, by type

	changed chan struct{}  // a transport closed or the persistent set changed
	updates changes.Signal // a transport came up or went down (Changed)
	wg      sync.WaitGroup
}

// Totals are what transports of one type carried.
type Totals struct {
	SentBytes, ReceivedBytes     uint64
	SentPackets, ReceivedPackets uint64
	Up                           int // open now
}

func (t *Totals) add(tp *Transport) {
	t.SentBytes += tp.Sent()
	t.ReceivedBytes += tp.Received()
	t.SentPackets += tp.SentPackets()
	t.ReceivedPackets += tp.ReceivedPackets()
}

// Totals is what every transport of each type carried since the manager
// started, open or closed (counters that only grow, for metrics), and how
// many of each are open now.
func (m *Manager) Totals() map[Type]Totals {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[Type]Totals{}
	for typ, g := range m.gone {
		out[typ] = g
	}
	for _, tp := range m.tps {
		t := out[tp.typ]
		t.add(tp)
		t.Up++
		out[tp.typ] = t
	}
	return out
}

// NewManager returns a manager; Run runs it.
func NewManager(cfg Config) *Manager {
	if cfg.Keepalive <= 0 {
		cfg.Keepalive = DefaultKeepalive
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = tpdisc.HeartbeatInterval
	}
	if cfg.MaxTransports <= 0 {
		cfg.MaxTransports = DefaultMaxTransports
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	m := &Manager{
		cfg: cfg, pk: cfg.SK.PubKey(), log: cfg.Log, networks: map[Type]Network{},
		tps: map[key]*Transport{}, dialing: map[key]*dialState{}, persistent: map[key]bool{},
		installed: make(chan struct{}), changed: make(chan struct{}, 1),
	}
	for _, n := range cfg.Networks {
		m.networks[n.Type()] = n
	}
	return m
}

// Types lists the available types, in order of preference.
func (m *Manager) Types() []Type {
	var out []Type
	for _, t := range Types {
		if m.networks[t] != nil {
			out = append(out, t)
		}
	}
	return out
}

// Run serves every network and keeps persistent transports up until ctx
// ends; then it closes every transport and waits for its goroutines. A
// network whose listener fails for good (not a temporary error, which it
// waits out) stops the manager: Run returns that error, so no listener dies
// while its address is still advertised.
func (m *Manager) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var nwg sync.WaitGroup
	for _, n := range m.networks {
		nwg.Add(1)
		go func() {
			defer nwg.Done()
			if err := n.Serve(ctx, func(c Conn) { m.accept(ctx, n.Type(), c) }); err != nil && ctx.Err() == nil {
				m.log.Error("transport listener failed: stopping", zap.String("type", string(n.Type())), zap.NamedError("err", err))
				cancel(fmt.Errorf("%s listener: %w", n.Type(), err))
			}
		}()
	}
	m.persistLoop(ctx)
	m.mu.Lock()
	m.closed = true
	tps := make([]*Transport, 0, len(m.tps))
	for _, tp := range m.tps {
		tps = append(tps, tp)
	}
	m.mu.Unlock()
	for _, tp := range tps {
		tp.close(ErrClosed)
	}
	nwg.Wait()
	m.wg.Wait()
	if err := context.Cause(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// SetPersistent replaces the set of transports to keep up.
func (m *Manager) SetPersistent(list []Persistent) {
	m.mu.Lock()
	m.persistent = map[key]bool{}
	for _, p := range list {
		m.persistent[key{p.PK, p.Type}] = true
	}
	m.mu.Unlock()
	m.notify()
}

func (m *Manager) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Transports lists the open transports, oldest first.
func (m *Manager) Transports() []*Transport {
	m.mu.Lock()
	out := make([]*Transport, 0, len(m.tps))
	for _, tp := range m.tps {
		out = append(out, tp)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

// Transport finds an open transport by id, or by a unique prefix of its
// text form.
func (m *Manager) Transport(id string) (*Transport, error) {
	var found []*Transport
	for _, tp := range m.Transports() {
		if s := tp.id.String(); s == id {
			return tp, nil
		} else if id != "" && strings.HasPrefix(s, strings.ToLower(id)) {
			found = append(found, tp)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no transport %q (see ls-tp)", id)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%d transports start with %q: give more of the id", len(found), id)
}

// Remove closes the transport with id (or a unique prefix).
func (m *Manager) Remove(id string) (*Transport, error) {
	tp, err := m.Transport(id)
	if err != nil {
		return nil, err
	}
	tp.close(errRemoved)
	return tp, nil
}

// Dial returns the transport of type typ to remote, dialling it if there is
// none. With typ "" it tries the available types, direct before relayed,
// and returns the first that works.
func (m *Manager) Dial(ctx context.Context, remote cipher.PubKey, typ Type) (*Transport, error) {
	if remote == m.pk {
		return nil, errors.New("that is this visor's own key")
	}
	if err := remote.Check(); err != nil {
		return nil, err
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultDialTimeout)
		defer cancel()
	}
	if typ != "" {
		return m.dialType(ctx, remote, typ)
	}
	types := m.Types()
	if len(types) == 0 {
		return nil, fmt.Errorf("%w: this visor has no transport types configured", ErrUnavailable)
	}
	// Keep an existing transport of any type.
	for _, t := range types {
		m.mu.Lock()
		tp := m.tps[key{remote, t}]
		m.mu.Unlock()
		if tp != nil {
			return tp, nil
		}
	}
	var errs []error
	for _, t := range types {
		tp, err := m.dialType(ctx, remote, t)
		if err == nil {
			return tp, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (m *Manager) dialType(ctx context.Context, remote cipher.PubKey, typ Type) (*Transport, error) {
	n := m.networks[typ]
	if n == nil {
		return nil, fmt.Errorf("%s: %w on this visor (see its config)", typ, ErrUnavailable)
	}
	k := key{remote, typ}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	if tp := m.tps[k]; tp != nil {
		m.mu.Unlock()
		return tp, nil
	}
	if d := m.dialing[k]; d != nil {
		m.mu.Unlock()
		select {
		case <-d.done:
			return d.tp, d.err
		case <-ctx.Done():
			return nil, fmt.Errorf("%s %s: %w", typ, remote.Short(), ctx.Err())
		}
	}
	d := &dialState{done: make(chan struct{})}
	m.dialing[k] = d
	m.mu.Unlock()

	d.tp, d.err = m.dial(ctx, n, remote)
	if d.err != nil {
		d.err = fmt.Errorf("%s %s: %w", typ, remote.Short(), d.err)
	}
	m.mu.Lock()
	delete(m.dialing, k)
	m.mu.Unlock()
	close(d.done)
	return d.tp, d.err
}

func (m *Manager) dial(ctx context.Context, n Network, remote cipher.PubKey) (*Transport, error) {
	c, err := n.Dial(ctx, remote)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("timed out (%w): %w", ctx.Err(), err)
		}
		return nil, err
	}
	deadline := time.Now().Add(SettleTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	e, err := sendHello(c, m.cfg.SK, n.Type())
	var ans answer
	var sig cipher.Sig
	if err == nil {
		ans, sig, err = readAnswer(c, e)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	switch ans {
	case answerAccepted:
		c.SetDeadline(time.Time{})
		se := tpdisc.SignedEntry{Entry: e}
		mine, err := e.Sign(m.cfg.SK)
		if err != nil {
			c.Close()
			return nil, err
		}
		se.Sigs[e.EdgeIndex(m.pk)] = mine
		se.Sigs[e.EdgeIndex(remote)] = sig
		return m.install(c, n.Type(), se, true)
	case answerSimultaneous:
		c.Close()
		return m.awaitInstalled(ctx, key{remote, n.Type()})
	}
	c.Close()
	return nil, fmt.Errorf("%w: %v", ErrRefused, ans)
}

// awaitInstalled waits for the peer's dial (which won) to install k.
func (m *Manager) awaitInstalled(ctx context.Context, k key) (*Transport, error) {
	for {
		m.mu.Lock()
		tp, ch := m.tps[k], m.installed
		m.mu.Unlock()
		if tp != nil {
			return tp, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("simultaneous dial: the peer's transport never arrived: %w", ctx.Err())
		}
	}
}

// accept settles a connection a network accepted.
func (m *Manager) accept(ctx context.Context, typ Type, c Conn) {
	c.SetDeadline(time.Now().Add(SettleTimeout))
	e, dsig, err := readHello(c, m.pk, typ)
	if err != nil {
		m.log.Debug("settlement failed", zap.String("remote", c.RemotePK().Hex()), zap.NamedError("err", err))
		c.Close()
		return
	}
	k := key{c.RemotePK(), typ}
	ans := answerAccepted
	m.mu.Lock()
	existing := m.tps[k]
	switch {
	case m.closed || ctx.Err() != nil:
		ans = answerRefused
	case m.pk.Less(k.pk) && (m.dialing[k] != nil || existing != nil && existing.dialer):
		// A transport dialled by the lower key beats one dialled by the
		// higher key, in flight or established: the peer waits for ours.
		ans = answerSimultaneous
	case existing == nil && len(m.tps)+m.accepting >= m.cfg.MaxTransports:
		ans = answerBusy
	case existing == nil && m.cfg.MaxInbound > 0 && m.inboundLocked()+m.accepting >= m.cfg.MaxInbound:
		ans = answerBusy
	}
	if ans == answerAccepted {
		m.accepting++
	}
	m.mu.Unlock()
	var sig cipher.Sig
	if ans == answerAccepted {
		sig, err = e.Sign(m.cfg.SK)
		if err == nil {
			err = writeAnswer(c, ans, sig)
		}
		if err == nil {
			c.SetDeadline(time.Time{})
			se := tpdisc.SignedEntry{Entry: e}
			se.Sigs[e.EdgeIndex(m.pk)] = sig
			se.Sigs[e.EdgeIndex(k.pk)] = dsig
			_, err = m.install(c, typ, se, false)
		}
		m.mu.Lock()
		m.accepting--
		m.mu.Unlock()
		if err != nil {
			c.Close()
		}
		return
	}
	writeAnswer(c, ans, sig)
	c.Close()
}

// inboundLocked counts the transports other visors dialled.
func (m *Manager) inboundLocked() int {
	n := 0
	for _, tp := range m.tps {
		if !tp.dialer {
			n++
		}
	}
	return n
}

// install makes c a running transport, replacing an older one to the same
// peer and type.
func (m *Manager) install(c Conn, typ Type, se tpdisc.SignedEntry, dialer bool) (*Transport, error) {
	tp := newTransport(c, typ, se, dialer, m.cfg.SK, m.cfg.WriteTimeout, m.log)
	k := key{tp.remote, typ}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		c.Close()
		return nil, ErrClosed
	}
	old := m.tps[k]
	m.tps[k] = tp
	close(m.installed)
	m.installed = make(chan struct{})
	m.wg.Add(3)
	m.mu.Unlock()
	m.updates.Notify()
	if old != nil {
		old.close(errReplaced)
	}
	m.mu.Lock()
	handler := m.cfg.Handler
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		tp.readLoop(handler)
	}()
	go func() {
		defer m.wg.Done()
		tp.keepLoop(m.cfg.Keepalive, 3*m.cfg.Keepalive)
	}()
	go func() {
		defer m.wg.Done()
		m.watch(tp)
	}()
	tp.log.Info("transport up", zap.Bool("dialer", dialer))
	return tp, nil
}

// watch keeps a dialled transport registered while it lives, and removes
// the transport from the manager when it closes.
func (m *Manager) watch(tp *Transport) {
	disc := m.cfg.Discovery
	if disc != nil && tp.dialer {
		first := true
		register := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			se := tp.Entry()
			if !first {
				// The discovery lost the entry (a restart, say) or refused
				// it: the signatures of its first registration have gone
				// stale, so both edges sign it anew.
				var err error
				if se, err = tp.Resign(ctx); err != nil {
					tp.log.Warn("re-signing the transport's discovery entry", zap.NamedError("err", err))
					return err
				}
			}
			first = false
			err := disc.Register(ctx, &se)
			if err != nil {
				tp.log.Warn("registering in the transport discovery", zap.NamedError("err", err))
			} else {
				tp.log.Debug("registered in the transport discovery")
			}
			return err
		}
		heartbeat := func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return disc.Heartbeat(ctx, tp.id)
		}
		// Heartbeats every HeartbeatInterval; when one fails (the
		// discovery restarted and lost the entry, say) the entry is
		// re-signed and registered again at once, then with a backoff.
		registered := register() == nil
		backoff := time.Second
		next := func() time.Duration {
			if registered {
				backoff = time.Second
				return m.cfg.Heartbeat
			}
			backoff = min(2*backoff, m.cfg.Heartbeat)
			return backoff
		}
		timer := time.NewTimer(next())
	loop:
		for {
			select {
			case <-tp.done:
				break loop
			case <-timer.C:
				if !registered || heartbeat() != nil {
					registered = register() == nil
				}
				timer.Reset(next())
			}
		}
		timer.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		disc.Deregister(ctx, tp.id)
		cancel()
	} else {
		<-tp.done
	}
	k := key{tp.remote, tp.typ}
	m.mu.Lock()
	if m.tps[k] == tp {
		delete(m.tps, k)
	}
	if m.gone == nil {
		m.gone = map[Type]Totals{}
	}
	g := m.gone[tp.typ]
	g.add(tp)
	m.gone[tp.typ] = g
	m.mu.Unlock()
	m.notify()
	m.updates.Notify()
	m.mu.Lock()
	onClose := m.cfg.OnClose
	m.mu.Unlock()
	if onClose != nil {
		onClose(tp)
	}
	tp.log.Info("transport down", zap.NamedError("err", tp.Err()))
}

// Changed returns a channel that closes when a transport next comes up or
// goes down (take it before listing Transports).
func (m *Manager) Changed() <-chan struct{} { return m.updates.Wait() }

// Find returns the open transport of type typ to pk, or nil.
func (m *Manager) Find(pk cipher.PubKey, typ Type) *Transport {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tps[key{pk, typ}]
}

// SetHandler sets the packet handler for transports installed from now on
// (call it before Run: the router and the manager are made in either
// order).
func (m *Manager) SetHandler(h func(*Transport, Packet), onClose func(*Transport)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg.Handler, m.cfg.OnClose = h, onClose
}

// persistLoop redials persistent transports that are down, with backoff,
// until ctx ends.
func (m *Manager) persistLoop(ctx context.Context) {
	type state struct {
		next    time.Time
		backoff time.Duration
		busy    bool
		failed  bool
	}
	states := map[key]*state{}
	type result struct {
		k   key
		err error
	}
	results := make(chan result)
	var dials sync.WaitGroup
	defer dials.Wait()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		m.mu.Lock()
		var due []key
		for k := range m.persistent {
			st := states[k]
			if st == nil {
				st = &state{backoff: time.Second}
				states[k] = st
			}
			if m.tps[k] != nil {
				st.backoff, st.failed = time.Second, false
				continue
			}
			if !st.busy && time.Now().After(st.next) {
				st.busy = true
				due = append(due, k)
			}
		}
		m.mu.Unlock()
		for _, k := range due {
			dials.Add(1)
			go func() {
				defer dials.Done()
				dctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
				_, err := m.dialType(dctx, k.pk, k.typ)
				cancel()
				select {
				case results <- result{k, err}:
				case <-ctx.Done():
				}
			}()
		}
		select {
		case <-ctx.Done():
			return
		case r := <-results:
			st := states[r.k]
			st.busy = false
			if r.err != nil {
				if !st.failed {
					m.log.Warn("persistent transport: dial failed; retrying with backoff", zap.String("remote", r.k.pk.Hex()), zap.String("type", string(r.k.typ)), zap.NamedError("err", r.err))
				}
				st.failed = true
				st.next = time.Now().Add(st.backoff)
				st.backoff = min(2*st.backoff, maxRedialBackoff)
			}
		case <-m.changed:
		case <-tick.C:
		}
	}
}
