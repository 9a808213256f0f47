package router

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"sync"

	"github.com/skyfleet/skywire/transport"
)

// pbuf is a pooled packet buffer: MaxPacket bytes, the header first.
type pbuf struct {
	b   []byte
	n   int  // bytes in use
	e2e bool // a DATA packet of a route encrypted end to end: see link.run
}

var pbufPool = sync.Pool{New: func() any { return &pbuf{b: make([]byte, transport.MaxPacket)} }}

func getPbuf() *pbuf { return pbufPool.Get().(*pbuf) }

func (p *pbuf) put() {
	p.n, p.e2e = 0, false
	pbufPool.Put(p)
}

func (p *pbuf) packet() transport.Packet { return transport.Packet(p.b[:p.n]) }

// copyPacket copies a packet (from a transport's read buffer) into a pooled
// buffer, with route id rid, marked as a packet of an end-to-end encrypted
// route if e2e.
func copyPacket(p transport.Packet, rid uint32, e2e bool) *pbuf {
	b := getPbuf()
	b.n = copy(b.b, p)
	b.e2e = e2e
	transport.Packet(b.b[:b.n]).SetRouteID(rid)
	return b
}

// link is the one writer of a transport: packets wait in a queue per route
// and go out round-robin, one route's packet at a time, so a busy route
// cannot starve the others. Enqueue never blocks (the transport reader
// forwards through it), and what a route can hold in its queue is bounded:
// DATA by a credit window of payload bytes (a sender that keeps to its
// credit never has more in flight), packed into as few buffers as they fit
// (so many small packets cannot hold a buffer each). Of the control
// packets only the idempotent ones are coalesced (a second WINDOW-UPDATE
// adds its credit to the first, a second ping or pong replaces the first's
// timestamp, a second keepalive is redundant); SETUP, SETUP-OK, SETUP-ERR
// and CLOSE are never merged or dropped: many setups share route id 0 and
// have the same size. A route may queue maxControl of those at most.
type link struct {
	tp      *transport.Transport
	maxData int // DATA payload bytes a route may have queued

	mu     sync.Mutex // guards queues, order, closed
	queues map[uint32]*routeQueue
	spare  []*routeQueue // emptied queues, reused (no allocation per packet)
	order  []uint32      // routes with queued packets, in turn order
	closed bool
	wake   chan struct{}
}

// routeQueue is one route's packets waiting for the link.
type routeQueue struct {
	pkts []*pbuf
	data int // DATA payload bytes in pkts
	ctrl int // packets in pkts that are never coalesced (see coalesces)
}

// maxControl bounds the packets of a route's queue that are never
// coalesced. Route id 0 carries this visor's own SETUPs (one per dial or
// setup being handled); on other routes each is sent once per route.
const maxControl = 4096

// coalesces reports whether a queued packet of type typ may absorb a later
// one of the same type (and size) on the same route: true only for the
// idempotent types.
func coalesces(typ transport.PacketType) bool {
	switch typ {
	case transport.PacketWindowUpdate, transport.PacketPing, transport.PacketPong, transport.PacketKeepalive:
		return true
	}
	return false
}

// Why enqueue refused a packet.
var (
	errLinkClosed = errors.New("its transport closed")
	errQueueFull  = errors.New("its sender ignored the credit window")
	errCtrlFull   = errors.New("too many control packets queued on it")
)

func newLink(tp *transport.Transport, maxData int) *link {
	return &link{tp: tp, maxData: maxData, queues: map[uint32]*routeQueue{}, wake: make(chan struct{}, 1)}
}

// enqueue queues b on route rid's queue (b is the queue's or freed from
// then on). It fails if the link is closed, the route's DATA would pass
// maxData (plus a packet), or its queue holds maxControl packets that are
// never coalesced.
func (l *link) enqueue(rid uint32, b *pbuf) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		b.put()
		return errLinkClosed
	}
	q := l.queues[rid]
	if q == nil {
		if k := len(l.spare); k > 0 {
			q, l.spare = l.spare[k-1], l.spare[:k-1]
		} else {
			q = &routeQueue{}
		}
		l.queues[rid] = q
	}
	p := b.packet()
	if typ := p.Type(); coalesces(typ) {
		for _, o := range q.pkts {
			if op := o.packet(); op.Type() == typ && len(op.Payload()) == len(p.Payload()) {
				switch typ {
				case transport.PacketWindowUpdate:
					if len(p.Payload()) == 4 {
						sum := uint64(binary.BigEndian.Uint32(op.Payload())) + uint64(binary.BigEndian.Uint32(p.Payload()))
						binary.BigEndian.PutUint32(op.Payload(), uint32(min(sum, math.MaxUint32)))
					}
				case transport.PacketPing, transport.PacketPong:
					copy(op.Payload(), p.Payload()) // the newest ping is the one waited for
				}
				l.mu.Unlock()
				b.put()
				return nil
			}
		}
	} else if typ != transport.PacketData {
		if q.ctrl >= maxControl {
			if len(q.pkts) == 0 {
				l.release(rid, q)
			}
			l.mu.Unlock()
			b.put()
			return errCtrlFull
		}
		q.ctrl++
	} else if n := len(p.Payload()); n > 0 {
		if q.data+n > l.maxData+transport.MaxPayload {
			l.mu.Unlock()
			b.put()
			return errQueueFull
		}
		q.data += n
		if k := len(q.pkts); k > 0 {
			t := q.pkts[k-1]
			tp := t.packet()
			if tp.Type() == transport.PacketData && len(tp.Payload()) > 0 && t.e2e == b.e2e && t.n+n <= len(t.b) {
				copy(t.b[t.n:], p.Payload())
				t.n = len(transport.MakePacket(t.b, transport.PacketData, rid, t.n+n-transport.HeaderSize))
				l.mu.Unlock()
				b.put()
				return nil
			}
		}
	}
	if len(q.pkts) == 0 {
		l.order = append(l.order, rid)
	}
	q.pkts = append(q.pkts, b)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// purge drops what route rid has queued.
func (l *link) purge(rid uint32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if q := l.queues[rid]; q != nil {
		for _, b := range q.pkts {
			b.put()
		}
		l.release(rid, q)
		l.order = slices.DeleteFunc(l.order, func(id uint32) bool { return id == rid })
	}
}

// maxBatch is how many packets the link hands its transport at once (the
// transport writes them in as few system calls as it can).
const maxBatch = 16

// run writes queued packets until the transport closes: whatever is queued,
// up to maxBatch packets, taken one route's packet at a time in turn.
func (l *link) run() {
	batch := make([]*pbuf, 0, maxBatch)
	out := make([]transport.Outgoing, 0, maxBatch)
	for {
		l.mu.Lock()
		if len(l.order) == 0 {
			l.mu.Unlock()
			select {
			case <-l.wake:
				continue
			case <-l.tp.Done():
				l.close()
				return
			}
		}
		for len(l.order) > 0 && len(batch) < maxBatch {
			rid := l.order[0]
			l.order = l.order[1:]
			q := l.queues[rid]
			b := q.pkts[0]
			// Shift rather than reslice, so the queue keeps its capacity
			// (it is short: a window of full packets at most).
			k := copy(q.pkts, q.pkts[1:])
			q.pkts[k] = nil
			q.pkts = q.pkts[:k]
			switch p := b.packet(); {
			case p.Type() == transport.PacketData:
				q.data -= len(p.Payload())
			case !coalesces(p.Type()):
				q.ctrl--
			}
			if len(q.pkts) > 0 {
				l.order = append(l.order, rid) // its next packet waits its turn
			} else {
				l.release(rid, q)
			}
			batch = append(batch, b)
			// The payload of an end-to-end encrypted route's DATA is
			// not sealed again by the transport (it still hides the
			// header).
			out = append(out, transport.Outgoing{Packet: b.packet(), E2E: b.e2e})
		}
		l.mu.Unlock()
		err := l.tp.WritePackets(out)
		for i, b := range batch {
			b.put()
			batch[i], out[i] = nil, transport.Outgoing{}
		}
		batch, out = batch[:0], out[:0]
		if err != nil {
			l.close()
			return
		}
	}
}

// release forgets route rid's queue q and keeps it for reuse.
func (l *link) release(rid uint32, q *routeQueue) {
	delete(l.queues, rid)
	clear(q.pkts)
	q.pkts, q.data, q.ctrl = q.pkts[:0], 0, 0
	l.spare = append(l.spare, q)
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for rid, q := range l.queues {
		for _, b := range q.pkts {
			b.put()
		}
		delete(l.queues, rid)
	}
	l.order = nil
}
