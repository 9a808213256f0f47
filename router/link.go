package router

import (
	"sync"

	"github.com/skyfleet/skywire/transport"
)

// pbuf is a pooled packet buffer: MaxPacket bytes, the header first.
type pbuf struct {
	b []byte
	n int // bytes in use
}

var pbufPool = sync.Pool{New: func() any { return &pbuf{b: make([]byte, transport.MaxPacket)} }}

func getPbuf() *pbuf { return pbufPool.Get().(*pbuf) }

func (p *pbuf) put() {
	p.n = 0
	pbufPool.Put(p)
}

func (p *pbuf) packet() transport.Packet { return transport.Packet(p.b[:p.n]) }

// copyPacket copies a packet (from a transport's read buffer) into a pooled
// buffer, with route id rid.
func copyPacket(p transport.Packet, rid uint32) *pbuf {
	b := getPbuf()
	b.n = copy(b.b, p)
	transport.Packet(b.b[:b.n]).SetRouteID(rid)
	return b
}

// link is the one writer of a transport: packets wait in a queue per route
// and go out round-robin, one route's packet at a time, so a busy route
// cannot starve the others. Queues are bounded by the routes' credit
// windows (enqueue never blocks the transport reader that forwards).
type link struct {
	tp *transport.Transport

	mu     sync.Mutex // guards queues, order, closed
	queues map[uint32][]*pbuf
	order  []uint32 // routes with queued packets, in turn order
	closed bool
	wake   chan struct{}
}

func newLink(tp *transport.Transport) *link {
	return &link{tp: tp, queues: map[uint32][]*pbuf{}, wake: make(chan struct{}, 1)}
}

// enqueue queues b on route rid's queue; false (b freed) if the link is
// closed.
func (l *link) enqueue(rid uint32, b *pbuf) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		b.put()
		return false
	}
	q := l.queues[rid]
	if len(q) == 0 {
		l.order = append(l.order, rid)
	}
	l.queues[rid] = append(q, b)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// run writes queued packets until the transport closes.
func (l *link) run() {
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
		rid := l.order[0]
		q := l.queues[rid]
		b := q[0]
		q[0] = nil
		q = q[1:]
		l.order = l.order[1:]
		if len(q) > 0 {
			l.queues[rid] = q
			l.order = append(l.order, rid) // its next packet waits its turn
		} else {
			delete(l.queues, rid)
		}
		l.mu.Unlock()
		err := l.tp.WritePacket(b.packet())
		b.put()
		if err != nil {
			l.close()
			return
		}
	}
}

func (l *link) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for rid, q := range l.queues {
		for _, b := range q {
			b.put()
		}
		delete(l.queues, rid)
	}
	l.order = nil
}
