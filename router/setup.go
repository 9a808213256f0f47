package router

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/transport"
)

// routePurpose binds end-to-end route handshakes.
const routePurpose = "route"

// Errors a dial reports.
var (
	// ErrNoRoute: no path to the destination.
	ErrNoRoute = errors.New("no route")
	// ErrRefused: a hop refused the setup (see SetupError).
	ErrRefused = errors.New("route setup refused")
)

// SetupError says which hop refused a route and why.
type SetupError struct {
	Hop    cipher.PubKey
	Index  int // the hop's position on the path (0 = the first hop after us); -1 if unknown
	Reason string
}

func (e *SetupError) Error() string {
	where := "hop " + e.Hop.Short()
	if e.Index >= 0 {
		where = fmt.Sprintf("hop %d (%s)", e.Index+1, e.Hop.Short())
	}
	return fmt.Sprintf("%v by %s: %s", ErrRefused, where, e.Reason)
}

func (e *SetupError) Unwrap() error { return ErrRefused }

// DialOptions tune one dial.
type DialOptions struct {
	// MinHops overrides Config.MinHops when > 0.
	MinHops int
	// Via, for a route to this visor itself, is the neighbour it goes
	// out to and comes back from (a loop over one transport: what
	// `doctor` uses to test the whole path through another visor).
	Via cipher.PubKey
}

// Dial sets up a route to dst:port and returns the connection. It tries
// the paths shortest first and returns the first that works; the error
// names what each refusal was.
func (r *Router) Dial(ctx context.Context, dst cipher.PubKey, port uint16, opts DialOptions) (c *Conn, err error) {
	began := time.Now()
	defer func() { r.stats.dialed(err, time.Since(began)) }()
	if dst == r.pk {
		if opts.Via == (cipher.PubKey{}) || opts.Via == r.pk {
			return nil, errors.New("route to this visor itself (give a neighbour to loop through)")
		}
		return r.dialLoop(ctx, opts.Via, port)
	}
	minHops := int(r.minHops.Load())
	if opts.MinHops > 0 {
		minHops = opts.MinHops
	}
	paths, err := r.paths(ctx, dst, minHops)
	if err != nil {
		return nil, fmt.Errorf("route to %s:%d: %w", dst.Short(), port, err)
	}
	var errs []error
	for _, path := range paths {
		c, err := r.dialPath(ctx, path, dst, port)
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("via %s: %w", pathString(path), err))
		var se *SetupError
		if ctx.Err() != nil || errors.As(err, &se) && se.Hop == dst {
			break // the destination itself said no: another path will not help
		}
	}
	return nil, fmt.Errorf("route to %s:%d: %w", dst.Short(), port, errors.Join(errs...))
}

// dialLoop sets up a route from this visor to itself through its
// neighbour via: out over a transport to via, back over the same one.
func (r *Router) dialLoop(ctx context.Context, via cipher.PubKey, port uint16) (*Conn, error) {
	for _, t := range transport.Types {
		if r.tpm.Find(via, t) != nil {
			path := []Hop{{PK: via, Type: t}, {PK: r.pk, Type: t}}
			c, err := r.dialPath(ctx, path, r.pk, port)
			if err != nil {
				return nil, fmt.Errorf("route to this visor through %s: %w", via.Short(), err)
			}
			return c, nil
		}
	}
	return nil, fmt.Errorf("%w: no transport to %s to loop through", ErrNoRoute, via.Short())
}

func pathString(path []Hop) string {
	parts := make([]string, len(path))
	for i, h := range path {
		parts[i] = string(h.Type) + "→" + h.PK.Short()
	}
	return strings.Join(parts, " ")
}

// paths lists the paths to try: a direct transport first (when one hop is
// allowed), then the path finder's.
func (r *Router) paths(ctx context.Context, dst cipher.PubKey, minHops int) ([][]Hop, error) {
	var out [][]Hop
	if minHops <= 1 {
		for _, t := range transport.Types {
			if r.tpm.Find(dst, t) != nil {
				out = append(out, []Hop{{PK: dst, Type: t}})
				break
			}
		}
	}
	if r.cfg.Paths != nil {
		found, err := r.cfg.Paths.Paths(ctx, r.pk, dst, minHops)
		if err != nil && len(out) == 0 {
			return nil, fmt.Errorf("%w: %w", ErrNoRoute, err)
		}
		for _, p := range found {
			if len(p) >= max(minHops, 1) && !slicesContainsPath(out, p) {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		if r.cfg.Paths == nil {
			return nil, fmt.Errorf("%w: no transport to %s (add one with add-tp) and no route finder configured", ErrNoRoute, dst.Short())
		}
		return nil, fmt.Errorf("%w: the route finder knows no path of %d or more hops", ErrNoRoute, max(minHops, 1))
	}
	return out, nil
}

func slicesContainsPath(paths [][]Hop, p []Hop) bool {
	for _, q := range paths {
		if len(q) == len(p) {
			same := true
			for i := range q {
				same = same && q[i] == p[i]
			}
			if same {
				return true
			}
		}
	}
	return false
}

// dialPath sets up one route along path.
func (r *Router) dialPath(ctx context.Context, path []Hop, dst cipher.PubKey, port uint16) (*Conn, error) {
	first := r.tpm.Find(path[0].PK, path[0].Type)
	if first == nil {
		return nil, fmt.Errorf("no %s transport to %s", path[0].Type, path[0].PK.Short())
	}
	e2e := len(path) >= 2
	var hs *noise.Handshake
	m := &setupMsg{time: time.Now(), dst: Addr{dst, port}, hops: path}
	rand.Read(m.nonce[:])
	if e2e {
		m.flags |= flagE2E
		var err error
		if hs, err = noise.NewHandshake(noise.Config{Pattern: noise.KK, Initiator: true, LocalSK: r.cfg.SK, RemotePK: dst, Purpose: routePurpose}); err != nil {
			return nil, err
		}
		if m.noise, err = hs.WriteMessage(nil); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrRouteClosed
	}
	lport, err := r.ports.Ephemeral()
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	m.src = Addr{r.pk, lport}
	rc := newRouteConn(r, m.src, m.dst, path)
	rc.e2e = e2e
	ru := &rule{kind: ruleConsume, in: first, conn: rc, dial: make(chan dialResult, 1)}
	rc.inID = r.addRuleLocked(ru)
	m.revID = rc.inID
	r.mu.Unlock()
	fail := func(err error) (*Conn, error) {
		r.removeRule(rc.inID)
		r.freePort(lport)
		return nil, err
	}
	if err := encodeSetup(m, r.cfg.SK); err != nil {
		return fail(err)
	}
	if err := r.send(first, transport.PacketSetup, 0, m.payload()); err != nil {
		return fail(fmt.Errorf("send setup to %s: %w", first.Remote().Short(), err))
	}
	timer := time.NewTimer(r.cfg.SetupTimeout)
	defer timer.Stop()
	var res dialResult
	select {
	case res = <-ru.dial:
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-timer.C:
		return fail(fmt.Errorf("no answer within %v", r.cfg.SetupTimeout))
	}
	if res.ok == nil {
		idx := -1
		for i, h := range path {
			if h.PK == res.origin {
				idx = i
			}
		}
		return fail(&SetupError{Hop: res.origin, Index: idx, Reason: res.reason})
	}
	rtts := append([]time.Duration{first.RTT()}, reversed(res.ok.rtts)...)
	rc.mu.Lock()
	rc.out, rc.outID, rc.rtts = r.linkFor(first), res.ok.fwdID, rtts
	rc.mu.Unlock()
	r.mu.Lock()
	ru.dial = nil
	r.mu.Unlock()
	var nc *noise.Conn
	if e2e {
		if _, err := hs.ReadMessage(res.ok.noise); err != nil {
			rc.Close()
			return nil, err
		}
		if nc, err = hs.Conn(rc); err != nil {
			rc.Close()
			return nil, err
		}
	}
	c := newConn(rc, nc)
	c.release = func() { r.freePort(lport) }
	return c, nil
}

func reversed(d []time.Duration) []time.Duration {
	out := make([]time.Duration, len(d))
	for i, x := range d {
		out[len(d)-1-i] = x
	}
	return out
}

// finishDial hands a SETUP-OK or SETUP-ERR to the initiator waiting on ru.
func (r *Router) finishDial(ru *rule, p transport.Packet) {
	var res dialResult
	if p.Type() == transport.PacketSetupOK {
		ok, err := parseSetupOK(p.Payload())
		if err != nil {
			res = dialResult{origin: ru.in.Remote(), reason: err.Error()}
		} else {
			ok.noise = append([]byte(nil), ok.noise...) // the packet's buffer is reused
			res.ok = ok
		}
	} else {
		origin, reason, err := parseSetupErr(p.Payload())
		if err != nil {
			origin, reason = ru.in.Remote(), err.Error()
		}
		res = dialResult{origin: origin, reason: reason}
	}
	select {
	case ru.dial <- res:
	default:
	}
}

// setupWork is a SETUP waiting to be handled.
type setupWork struct {
	tp      *transport.Transport
	payload []byte
}

// startSetup takes a SETUP off the transport reader: checking it costs a
// signature verification, so it is handled off the reader, by at most
// MaxSetups workers; the rest wait in arrival order (bounded in all and per
// transport; beyond that the visor answers busy). Nothing is dropped
// without an answer.
func (r *Router) startSetup(tp *transport.Transport, p transport.Packet) {
	busy := func(why string) {
		if rev, err := parseSetupHeader(p.Payload()); err == nil && rev != 0 {
			r.send(tp, transport.PacketSetupErr, rev, setupErrPayload(r.pk, why))
		}
	}
	if len(p.Payload()) > maxSetupSize {
		busy(fmt.Sprintf("malformed setup: %d bytes", len(p.Payload())))
		return
	}
	w := setupWork{tp: tp, payload: append([]byte(nil), p.Payload()...)}
	r.setupMu.Lock()
	switch {
	case r.setupsOf[tp] >= MaxSetupsPerPeer:
		r.setupMu.Unlock()
		busy(fmt.Sprintf("busy: %d route setups from %s already waiting", MaxSetupsPerPeer, tp.Remote().Short()))
		return
	case len(r.setupQueue) >= MaxQueuedSetups:
		r.setupMu.Unlock()
		busy("busy: too many route setups at once")
		return
	}
	r.setupsOf[tp]++
	if r.setupsRun >= MaxSetups {
		r.setupQueue = append(r.setupQueue, w)
		r.setupMu.Unlock()
		return
	}
	r.setupsRun++
	r.setupMu.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.setupDone(w.tp)
		r.setupMu.Lock()
		r.setupsRun--
		r.setupMu.Unlock()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	go r.setupWorker(w)
}

// setupWorker handles w, then what waits in the queue, until it is empty.
func (r *Router) setupWorker(w setupWork) {
	defer r.wg.Done()
	for {
		r.mu.Lock()
		closed := r.closed
		r.mu.Unlock()
		if !closed {
			r.handleSetup(w.tp, w.payload)
		}
		r.setupDone(w.tp)
		r.setupMu.Lock()
		if len(r.setupQueue) == 0 {
			r.setupsRun--
			r.setupQueue = nil
			r.setupMu.Unlock()
			return
		}
		w = r.setupQueue[0]
		r.setupQueue[0] = setupWork{}
		r.setupQueue = r.setupQueue[1:]
		r.setupMu.Unlock()
	}
}

// setupDone uncounts a setup of tp's, handled or dropped.
func (r *Router) setupDone(tp *transport.Transport) {
	r.setupMu.Lock()
	if n := r.setupsOf[tp] - 1; n > 0 {
		r.setupsOf[tp] = n
	} else {
		delete(r.setupsOf, tp)
	}
	r.setupMu.Unlock()
}

// parseSetupHeader returns a SETUP's rev id without checking anything.
func parseSetupHeader(p []byte) (uint32, error) {
	if len(p) < 4 {
		return 0, errWire
	}
	return binary.BigEndian.Uint32(p[len(p)-4:]), nil
}

// handleSetup processes a SETUP that came over tp.
func (r *Router) handleSetup(tp *transport.Transport, payload []byte) {
	refuse := func(revID uint32, format string, args ...any) {
		reason := fmt.Sprintf(format, args...)
		r.log.Debug("route setup refused", zap.String("remote", tp.Remote().Hex()), zap.String("reason", reason))
		r.send(tp, transport.PacketSetupErr, revID, setupErrPayload(r.pk, reason))
	}
	m, err := parseSetup(payload)
	if err != nil {
		if rev, herr := parseSetupHeader(payload); herr == nil && rev != 0 {
			refuse(rev, "malformed or forged setup: %v", err)
		}
		return
	}
	if d := time.Since(m.time); d > MaxClockSkew || d < -MaxClockSkew {
		refuse(m.revID, "setup time is %v off this visor's clock", d.Round(time.Second))
		return
	}
	var rk [49]byte
	copy(rk[:], m.src.PK[:])
	copy(rk[33:], m.nonce[:])
	if err := r.seen.Add(rk, time.Now()); err != nil {
		refuse(m.revID, "replayed setup")
		return
	}
	idx := -1
	for i, h := range m.hops {
		if h.PK == r.pk {
			if idx >= 0 {
				refuse(m.revID, "the path visits this visor twice")
				return
			}
			idx = i
		}
	}
	if idx < 0 {
		refuse(m.revID, "this visor is not on the path")
		return
	}
	prev := m.src.PK
	if idx > 0 {
		prev = m.hops[idx-1].PK
	}
	if tp.Remote() != prev || tp.Type() != m.hops[idx].Type {
		refuse(m.revID, "the setup came over the wrong transport")
		return
	}
	if idx == len(m.hops)-1 {
		r.acceptSetup(tp, m, refuse)
		return
	}
	next := m.hops[idx+1]
	out := r.tpm.Find(next.PK, next.Type)
	if out == nil {
		refuse(m.revID, "no %s transport to the next hop %s", next.Type, next.PK.Short())
		return
	}
	r.mu.Lock()
	rev := r.addRuleLocked(&rule{kind: ruleForward, e2e: m.flags&flagE2E != 0, in: out, out: tp, outID: m.revID, expiry: time.Now().Add(r.cfg.SetupTimeout)})
	r.mu.Unlock()
	m.revID = rev
	r.send(out, transport.PacketSetup, 0, m.payload())
}

// acceptSetup is the destination's part of a setup.
func (r *Router) acceptSetup(tp *transport.Transport, m *setupMsg, refuse func(uint32, string, ...any)) {
	e2e := m.flags&flagE2E != 0
	switch {
	case m.dst.PK != r.pk:
		refuse(m.revID, "the path ends here, but the route is for %s", m.dst.PK.Short())
		return
	case len(m.hops) >= 2 && !e2e:
		refuse(m.revID, "a route of %d hops must be encrypted end to end", len(m.hops))
		return
	}
	r.mu.Lock()
	l := r.listeners[m.dst.Port]
	r.mu.Unlock()
	if l == nil {
		refuse(m.revID, "nothing listens on port %d", m.dst.Port)
		return
	}
	if !l.queue.Reserve() {
		refuse(m.revID, "busy: port %d has too many routes waiting to be accepted", m.dst.Port)
		return
	}
	var hs *noise.Handshake
	var msg2 []byte
	if e2e {
		var err error
		hs, err = noise.NewHandshake(noise.Config{Pattern: noise.KK, LocalSK: r.cfg.SK, RemotePK: m.src.PK, Purpose: routePurpose})
		if err == nil {
			_, err = hs.ReadMessage(m.noise)
		}
		if err == nil {
			msg2, err = hs.WriteMessage(nil)
		}
		if err != nil {
			l.queue.Unreserve()
			refuse(m.revID, "end-to-end handshake: %v", err)
			return
		}
	}
	rc := newRouteConn(r, m.dst, m.src, m.hops)
	rc.e2e = e2e
	rc.out, rc.outID = r.linkFor(tp), m.revID
	r.mu.Lock()
	rc.inID = r.addRuleLocked(&rule{kind: ruleConsume, in: tp, conn: rc})
	r.mu.Unlock()
	var nc *noise.Conn
	if e2e {
		var err error
		if nc, err = hs.Conn(rc); err != nil {
			l.queue.Unreserve()
			r.removeRule(rc.inID)
			refuse(m.revID, "end-to-end handshake: %v", err)
			return
		}
	}
	r.send(tp, transport.PacketSetupOK, m.revID, (&setupOK{fwdID: rc.inID, noise: msg2}).payload())
	l.queue.Deliver(newConn(rc, nc))
}

// passSetupOK completes a hop: the forward rule from the setup's incoming
// transport, then the answer goes on back.
func (r *Router) passSetupOK(rev *rule, p transport.Packet) {
	ok, err := parseSetupOK(p.Payload())
	if err != nil {
		r.removeRule(rev.id)
		r.send(rev.out, transport.PacketSetupErr, rev.outID, setupErrPayload(r.pk, "malformed setup answer from the next hop"))
		return
	}
	r.mu.Lock()
	if r.rules[rev.id] != rev {
		r.mu.Unlock()
		return // expired meanwhile
	}
	fwd := r.addRuleLocked(&rule{kind: ruleForward, e2e: rev.e2e, in: rev.out, out: rev.in, outID: ok.fwdID, pair: rev.id})
	rev.pair, rev.expiry = fwd, time.Time{}
	r.mu.Unlock()
	ok.fwdID = fwd
	ok.rtts = append(ok.rtts, rev.in.RTT())
	r.send(rev.out, transport.PacketSetupOK, rev.outID, ok.payload())
}
