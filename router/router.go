// Package router carries app connections over multi-hop routes of
// transports.
//
// Rules: every visor keeps, per route it is on, one rule for each
// direction, keyed by the route id it receives packets on (it chooses those
// ids): a forward rule sends the packet on (out transport, out id) with only
// the id rewritten; a consume rule hands it to a route group (an app
// connection, Conn). A packet that arrives on another transport than its
// rule's is dropped.
//
// Setup is hop by hop, one round trip, no setup node (wire.go):
//
//  1. The initiator picks a path (its own transport, or the route finder's
//     k shortest) and sends SETUP — signed, with its reverse id — on route 0
//     to the first hop.
//  2. Each hop checks the signature, time and nonce, that it is on the path
//     and that the SETUP came over the path's transport; it installs its
//     reverse rule (pending), puts its own reverse id in, and passes SETUP on.
//  3. The destination checks that something listens on the port, installs
//     its consume rule and answers SETUP-OK with its forward id (and Noise KK
//     message 2 on routes of two or more hops: message 1 rode in SETUP).
//  4. SETUP-OK travels back over the reverse rules; each hop installs its
//     forward rule and puts its own forward id in. A hop that cannot go on
//     answers SETUP-ERR naming itself and why; it travels back the same way,
//     removing the pending rules.
//
// Flow control is per route: the sender has a credit window (Config.Window)
// that the receiver replenishes with WINDOW-UPDATE as its app reads, so at
// most a window of a route's bytes is anywhere on the path. Each transport
// has one writer (link) serving its routes round-robin, and a transport's
// reader only ever enqueues: one stalled route cannot stall another.
//
// Rules idle for Config.KeepAlive expire; route groups ping every third of
// it (which keeps the rules of both directions alive) and end when their
// pings go unanswered. CLOSE removes the route's rules on every hop.
package router

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/backlog"
	"github.com/skyfleet/skywire/internal/ports"
	"github.com/skyfleet/skywire/internal/replay"
	"github.com/skyfleet/skywire/transport"
)

// Defaults.
const (
	DefaultWindow       = 2 << 20
	DefaultKeepAlive    = 30 * time.Second
	DefaultSetupTimeout = 10 * time.Second
	// MaxSetups bounds route setups being processed at once; more wait
	// their turn in order, up to MaxQueuedSetups in all and
	// MaxSetupsPerPeer from one transport (queued or running); beyond that
	// they are refused (busy), so a flood cannot starve the visor nor one
	// peer crowd out the others.
	MaxSetups        = 32
	MaxQueuedSetups  = 8192
	MaxSetupsPerPeer = 1024
	// maxSetupSize: a SETUP of MaxHops hops with its handshake fits in
	// well under this; a bigger one is refused before it is queued.
	maxSetupSize = 4096
	// FirstEphemeralPort is where dial-side ports start.
	FirstEphemeralPort = 49152
	// idQuarantine keeps a freed route id unused for this long, so late
	// packets of an old route cannot reach a new one.
	idQuarantine = 10 * time.Second
	// MaxClockSkew bounds a SETUP's time.
	MaxClockSkew = 30 * time.Second
	// PortRouter is the router's own port (ping and bench).
	PortRouter = 0
)

// PathFinder finds paths from this visor to dst, shortest first (the route
// finder's client implements it).
type PathFinder interface {
	Paths(ctx context.Context, src, dst cipher.PubKey, minHops int) ([][]Hop, error)
}

// Config configures a Router.
type Config struct {
	SK         cipher.SecKey
	Transports *transport.Manager
	// Paths, if set, finds multi-hop paths; without it only direct routes
	// over this visor's own transports are possible.
	Paths PathFinder
	// MinHops is the default minimum hops of a route (0 or 1: any).
	MinHops int
	// Window is the per-route credit window in bytes (DefaultWindow).
	Window int
	// KeepAlive expires idle rules (DefaultKeepAlive).
	KeepAlive time.Duration
	// SetupTimeout bounds one path's setup (DefaultSetupTimeout).
	SetupTimeout time.Duration
	Log          *zap.Logger
}

type ruleKind uint8

const (
	ruleForward ruleKind = iota
	ruleConsume
)

// rule routes the packets that arrive on (in, id).
type rule struct {
	id     uint32
	kind   ruleKind
	e2e    bool // forward: the route is encrypted end to end (from its signed setup)
	in     *transport.Transport
	out    *transport.Transport // forward
	outID  uint32               // forward
	conn   *routeConn           // consume
	pair   uint32               // the other direction's rule at this visor
	last   atomic.Int64         // unix ns of the last packet
	expiry time.Time            // a pending rule's setup deadline (zero once set up)
	dial   chan dialResult      // the initiator's pending setup
}

type dialResult struct {
	ok     *setupOK
	origin cipher.PubKey
	reason string
}

type freeID struct {
	id    uint32
	since time.Time
}

// Router routes packets between transports and route groups.
type Router struct {
	cfg  Config
	pk   cipher.PubKey
	log  *zap.Logger
	tpm  *transport.Manager
	seen *replay.Cache[[49]byte] // (src, nonce) of setups

	mu        sync.Mutex // guards rules, nextID, free, listeners, ports, links, closed
	rules     map[uint32]*rule
	nextID    uint32
	free      []freeID
	listeners map[uint16]*Listener
	ports     *ports.Table // in use by listeners and dialled routes
	links     map[*transport.Transport]*link
	closed    bool

	setupMu    sync.Mutex // guards setupsRun, setupQueue, setupsOf; after mu
	setupsRun  int        // workers running (≤ MaxSetups)
	setupQueue []setupWork
	setupsOf   map[*transport.Transport]int // queued or running, per transport
	routerPort *Listener                    // port 0: ping and bench
	wg         sync.WaitGroup

	stats   stats        // drops and setups (stats.go), apart from the hot fields
	minHops atomic.Int64 // Config.MinHops, changed by SetMinHops
}

// New returns a router and attaches it to the transport manager as its
// packet handler.
func New(cfg Config) *Router {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.SetupTimeout <= 0 {
		cfg.SetupTimeout = DefaultSetupTimeout
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	r := &Router{
		cfg: cfg, pk: cfg.SK.PubKey(), log: cfg.Log, tpm: cfg.Transports,
		seen:  replay.New[[49]byte](1<<18, 2*MaxClockSkew),
		rules: map[uint32]*rule{}, nextID: 1, listeners: map[uint16]*Listener{},
		ports: ports.New(FirstEphemeralPort), links: map[*transport.Transport]*link{},
		setupsOf: map[*transport.Transport]int{},
	}
	r.minHops.Store(int64(cfg.MinHops))
	r.routerPort, _ = r.Listen(PortRouter)
	cfg.Transports.SetHandler(r.handlePacket, r.transportClosed)
	return r
}

// SetMinHops changes the default minimum hops of new routes (a config
// reload); routes up stay up.
func (r *Router) SetMinHops(n int) { r.minHops.Store(int64(n)) }

// PK is the router's (visor's) key.
func (r *Router) PK() cipher.PubKey { return r.pk }

// Run expires idle rules and keeps route groups alive until ctx ends; then
// it closes every route and waits for its goroutines.
func (r *Router) Run(ctx context.Context) error {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.serveRouterPort(r.routerPort)
	}()
	tick := time.NewTicker(r.cfg.KeepAlive / 6)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			r.shutdown()
			return nil
		case <-tick.C:
			r.sweep()
		}
	}
}

func (r *Router) shutdown() {
	r.mu.Lock()
	r.closed = true
	var conns []*routeConn
	for _, ru := range r.rules {
		if ru.kind == ruleConsume {
			conns = append(conns, ru.conn)
		}
	}
	ls := make([]*Listener, 0, len(r.listeners))
	for _, l := range r.listeners {
		ls = append(ls, l)
	}
	r.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	for _, l := range ls {
		l.Close()
	}
	r.wg.Wait()
}

// allocIDLocked returns an unused route id, reusing ids freed long enough
// ago.
func (r *Router) allocIDLocked() uint32 {
	if len(r.free) > 0 && time.Since(r.free[0].since) > idQuarantine {
		id := r.free[0].id
		r.free = r.free[1:]
		return id
	}
	for {
		id := r.nextID
		r.nextID++
		if r.nextID == 0 {
			r.nextID = 1
		}
		if _, used := r.rules[id]; !used && id != 0 {
			return id
		}
	}
}

// addRuleLocked installs ru under a fresh id and returns the id.
func (r *Router) addRuleLocked(ru *rule) uint32 {
	ru.id = r.allocIDLocked()
	ru.last.Store(time.Now().UnixNano())
	r.rules[ru.id] = ru
	return ru.id
}

// removeRule removes a rule (and not its pair).
func (r *Router) removeRule(id uint32) {
	r.mu.Lock()
	r.removeRuleLocked(id)
	r.mu.Unlock()
}

func (r *Router) removeRuleLocked(id uint32) *rule {
	ru := r.rules[id]
	if ru == nil {
		return nil
	}
	delete(r.rules, id)
	r.free = append(r.free, freeID{id: id, since: time.Now()})
	return ru
}

// linkFor returns tp's writer, starting it on first use.
func (r *Router) linkFor(tp *transport.Transport) *link {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.links[tp]
	if l == nil && r.closed {
		// Shutting down: no new writer may join the wait group Wait is
		// on. A closed link refuses what is queued on it.
		l = newLink(tp, r.cfg.Window)
		l.close()
		return l
	}
	if l == nil {
		l = newLink(tp, r.cfg.Window)
		r.links[tp] = l
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			l.run()
		}()
	}
	return l
}

// send queues a packet on tp (for packets that belong to no route yet).
func (r *Router) send(tp *transport.Transport, typ transport.PacketType, rid uint32, payload []byte) error {
	b := getPbuf()
	copy(b.b[transport.HeaderSize:], payload)
	b.n = len(transport.MakePacket(b.b, typ, rid, len(payload)))
	return r.linkFor(tp).enqueue(rid, b)
}

// handlePacket is the transport manager's handler: it runs on the
// transport's reader and never blocks.
func (r *Router) handlePacket(tp *transport.Transport, p transport.Packet) {
	if p.RouteID() == 0 {
		if p.Type() == transport.PacketSetup {
			r.startSetup(tp, p)
		}
		return
	}
	r.mu.Lock()
	ru := r.rules[p.RouteID()]
	if ru == nil || ru.in != tp {
		r.mu.Unlock()
		if ru == nil { // an unknown or expired route, or a forged one
			r.stats.drop(0)
		} else {
			r.stats.drop(1)
		}
		return
	}
	ru.last.Store(time.Now().UnixNano())
	switch ru.kind {
	case ruleConsume:
		c, dial := ru.conn, ru.dial
		r.mu.Unlock()
		switch p.Type() {
		case transport.PacketSetupOK, transport.PacketSetupErr:
			if dial != nil {
				r.finishDial(ru, p)
			}
		case transport.PacketClose:
			r.endRoute(c, p)
		default:
			c.handle(p)
		}
	case ruleForward:
		pending := !ru.expiry.IsZero()
		out, outID, pair, e2e := ru.out, ru.outID, ru.pair, ru.e2e
		if p.Type() == transport.PacketClose {
			r.removeRuleLocked(ru.id)
			r.removeRuleLocked(pair)
		}
		r.mu.Unlock()
		switch {
		case pending && p.Type() == transport.PacketSetupOK:
			r.passSetupOK(ru, p)
		case pending && p.Type() == transport.PacketSetupErr:
			r.removeRule(ru.id)
			r.send(out, transport.PacketSetupErr, outID, p.Payload())
		case pending:
			r.stats.drop(2) // nothing but the setup answer travels before a route is set up
		case p.Type() == transport.PacketSetup || p.Type() == transport.PacketSetupOK || p.Type() == transport.PacketSetupErr:
			r.stats.drop(2) // nor does one after it
		default:
			if err := r.linkFor(out).enqueue(outID, copyPacket(p, outID, e2e)); errors.Is(err, errQueueFull) || errors.Is(err, errCtrlFull) {
				r.overflow(ru.id, pair, out, outID)
			}
		}
	}
}

// overflow ends, at a forwarding hop, a route whose sender sent more than
// its credit allows: the rules go, what it has queued is dropped, and both
// ends are told (protocol error).
func (r *Router) overflow(id, pair uint32, out *transport.Transport, outID uint32) {
	r.stats.drop(3)
	r.mu.Lock()
	back := r.rules[pair]
	r.removeRuleLocked(id)
	r.removeRuleLocked(pair)
	r.mu.Unlock()
	r.log.Info("route closed: its sender ignored the credit window", zap.Uint32("route_id", id))
	r.linkFor(out).purge(outID)
	r.send(out, transport.PacketClose, outID, []byte{closeProtocol})
	if back != nil && back.kind == ruleForward {
		r.send(back.out, transport.PacketClose, back.outID, []byte{closeProtocol})
	}
}

// endRoute handles CLOSE at a route's end.
func (r *Router) endRoute(c *routeConn, p transport.Packet) {
	code := byte(closeByEnd)
	if pl := p.Payload(); len(pl) > 0 {
		code = pl[0]
	}
	if code == closeByEnd {
		c.end(io.EOF)
	} else {
		c.end(fmt.Errorf("%w: %s", ErrRouteClosed, closeReason(code)))
	}
	r.removeRule(c.inID)
}

// closeRoute ends a route at this end for a reason and tells the other end.
func (r *Router) closeRoute(c *routeConn, code byte, err error) {
	c.mu.Lock()
	out, outID := c.out, c.outID
	c.mu.Unlock()
	c.end(fmt.Errorf("%w: %w", ErrRouteClosed, err))
	c.sendControl(out, outID, transport.PacketClose, []byte{code})
	r.removeRule(c.inID)
}

// transportClosed removes the rules that use tp and ends the routes on it,
// telling the far side of each forward rule.
func (r *Router) transportClosed(tp *transport.Transport) {
	r.mu.Lock()
	var ended []*routeConn
	type notice struct {
		tp  *transport.Transport
		rid uint32
	}
	var notices []notice
	for id, ru := range r.rules {
		if ru.in != tp && ru.out != tp {
			continue
		}
		r.removeRuleLocked(id)
		switch {
		case ru.kind == ruleConsume:
			ended = append(ended, ru.conn)
		case ru.in == tp && ru.out != tp:
			// Packets from tp went out on ru.out: tell that side.
			notices = append(notices, notice{ru.out, ru.outID})
		}
	}
	l := r.links[tp]
	delete(r.links, tp)
	r.mu.Unlock()
	if l != nil {
		l.close()
	}
	for _, c := range ended {
		c.end(fmt.Errorf("%w: %s", ErrRouteClosed, closeReason(closeTransport)))
	}
	for _, n := range notices {
		r.send(n.tp, transport.PacketClose, n.rid, []byte{closeTransport})
	}
}

// sweep expires idle rules and pending setups, and pings idle route groups.
func (r *Router) sweep() {
	now := time.Now()
	idle := now.Add(-r.cfg.KeepAlive).UnixNano()
	r.mu.Lock()
	var expired, quiet []*routeConn
	for id, ru := range r.rules {
		switch {
		case !ru.expiry.IsZero() && now.After(ru.expiry):
			r.removeRuleLocked(id)
		case ru.expiry.IsZero() && ru.dial == nil && ru.last.Load() < idle:
			r.removeRuleLocked(id)
			if ru.kind == ruleConsume {
				expired = append(expired, ru.conn)
			}
		case ru.kind == ruleConsume && ru.dial == nil:
			quiet = append(quiet, ru.conn)
		}
	}
	r.mu.Unlock()
	for _, c := range expired {
		c.end(fmt.Errorf("%w: %s", ErrRouteClosed, closeReason(closeExpired)))
	}
	// Route groups ping every third of the keep-alive: the pings and pongs
	// keep both directions' rules on every hop alive.
	for _, c := range quiet {
		c.mu.Lock()
		due := now.Sub(c.lastSent) > r.cfg.KeepAlive/3
		out, outID := c.out, c.outID
		if due {
			c.lastSent = now
		}
		c.mu.Unlock()
		if due {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(now.UnixNano()))
			c.sendControl(out, outID, transport.PacketPing, b[:])
		}
	}
}

func (r *Router) freePort(p uint16) {
	r.mu.Lock()
	r.ports.Free(p)
	r.mu.Unlock()
}

// Listen accepts routes to port.
func (r *Router) Listen(port uint16) (*Listener, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrRouteClosed
	}
	if !r.ports.Take(port) {
		return nil, fmt.Errorf("port %d is in use", port)
	}
	l := &Listener{r: r, addr: Addr{PK: r.pk, Port: port}, queue: backlog.New[*Conn](acceptBacklog)}
	r.listeners[port] = l
	return l, nil
}

func (r *Router) removeListener(l *Listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listeners[l.addr.Port] == l {
		delete(r.listeners, l.addr.Port)
		r.ports.Free(l.addr.Port)
	}
}

// RuleInfo describes a rule for `route ls`.
type RuleInfo struct {
	ID        uint32        `json:"id"`
	Kind      string        `json:"kind"` // forward or consume
	InRemote  cipher.PubKey `json:"in_remote"`
	InType    string        `json:"in_type"`
	OutRemote cipher.PubKey `json:"out_remote,omitempty"`
	OutID     uint32        `json:"out_id,omitempty"`
	Local     string        `json:"local,omitempty"`  // consume: the route group's address
	Remote    string        `json:"remote,omitempty"` // consume: the other end
	Pending   bool          `json:"pending"`
	IdleSecs  float64       `json:"idle_seconds"`
}

// Rules lists the rules, by id.
func (r *Router) Rules() []RuleInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]RuleInfo, 0, len(r.rules))
	for _, ru := range r.rules {
		ri := RuleInfo{
			ID: ru.id, Kind: "forward", InRemote: ru.in.Remote(), InType: string(ru.in.Type()),
			Pending:  !ru.expiry.IsZero() || ru.dial != nil,
			IdleSecs: time.Since(time.Unix(0, ru.last.Load())).Seconds(),
		}
		if ru.kind == ruleConsume {
			ri.Kind, ri.Local, ri.Remote = "consume", ru.conn.local.String(), ru.conn.remote.String()
		} else {
			ri.OutRemote, ri.OutID = ru.out.Remote(), ru.outID
		}
		out = append(out, ri)
	}
	slices.SortFunc(out, func(a, b RuleInfo) int { return int(a.ID) - int(b.ID) })
	return out
}

// RemoveRule removes the rule with id (closing its route group if it is
// one's consume rule).
func (r *Router) RemoveRule(id uint32) error {
	r.mu.Lock()
	ru := r.rules[id]
	r.mu.Unlock()
	if ru == nil {
		return fmt.Errorf("no rule %d (see route ls)", id)
	}
	if ru.kind == ruleConsume {
		return ru.conn.Close()
	}
	r.removeRule(id)
	return nil
}

func closeReason(code byte) string {
	switch code {
	case closeByEnd:
		return "closed by the other end"
	case closeExpired:
		return "expired (no traffic)"
	case closeTransport:
		return "a transport on the path closed"
	case closeProtocol:
		return "protocol error"
	case closeAborted:
		return "reset by the other end"
	}
	return fmt.Sprintf("close code %d", code)
}

// Listener accepts route groups to one port.
type Listener struct {
	r     *Router
	addr  Addr
	queue *backlog.Queue[*Conn]
}

// acceptBacklog bounds the routes set up to a port and not yet accepted
// (beyond it a setup is refused busy). Like a TCP listen backlog it must
// hold a burst of dials: a browser behind a proxy opens dozens at once.
const acceptBacklog = 1024

// Accept waits for the next route.
func (l *Listener) Accept() (*Conn, error) {
	c, ok := l.queue.Accept()
	if !ok {
		return nil, ErrRouteClosed
	}
	return c, nil
}

// Addr is the listener's routing address.
func (l *Listener) Addr() Addr { return l.addr }

// Close stops accepting; routes not yet accepted are closed.
func (l *Listener) Close() error {
	if l.queue.Close() {
		l.r.removeListener(l)
	}
	return nil
}
