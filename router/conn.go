package router

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/transport"
)

// Addr is a routing address: a visor's key and a port.
type Addr struct {
	PK   cipher.PubKey
	Port uint16
}

// Network implements net.Addr.
func (Addr) Network() string { return "skywire" }

// String is "pk:port".
func (a Addr) String() string { return a.PK.Hex() + ":" + strconv.Itoa(int(a.Port)) }

// Errors a route reports.
var (
	ErrRouteClosed = errors.New("route closed")
	errWriteClosed = errors.New("route: write after CloseWrite")
	errWindow      = errors.New("the peer sent more than its credit allows")
)

// routeConn is one end of a route: the bytes of one app connection, as
// DATA packets out on a link and in through a consume rule. The sender may
// have at most `window` bytes unconsumed at the receiver (credit); the
// receiver returns credit with WINDOW-UPDATE as its reader consumes.
type routeConn struct {
	r      *Router
	local  Addr
	remote Addr
	inID   uint32 // our consume rule
	hops   []Hop  // the path from the initiator
	e2e    bool   // encrypted end to end (set before the route carries data)
	window int

	mu       sync.Mutex // guards the fields below
	out      *link      // nil until set up
	outID    uint32
	rq       []*pbuf // received payloads (payload only, b.b[:b.n])
	roff     int     // read offset in rq[0]
	rbytes   int     // bytes in rq not yet read
	unacked  int     // bytes read since the last WINDOW-UPDATE
	credit   int     // bytes we may still send
	rdl, wdl time.Time
	closed   bool          // closed by this end
	wclosed  bool          // CloseWrite: this end sends no more
	reof     bool          // the other end sends no more (an empty DATA)
	ended    error         // the route ended (the other end closed it, or it was lost)
	wake     chan struct{} // closed to wake waiters; nil while nobody waits
	lastRecv time.Time
	lastSent time.Time
	rtts     []time.Duration // per hop, from the setup
	pong     chan int64      // echoed ping timestamps
}

func newRouteConn(r *Router, local, remote Addr, hops []Hop) *routeConn {
	now := time.Now()
	return &routeConn{
		r: r, local: local, remote: remote, hops: hops, window: r.cfg.Window, credit: r.cfg.Window,
		lastRecv: now, lastSent: now, pong: make(chan int64, 1),
	}
}

// signalLocked wakes every waiter to re-check the state.
func (c *routeConn) signalLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

// wait blocks until the state changes or the deadline passes (returning a
// timeout). The caller holds c.mu; wait releases it while waiting.
func (c *routeConn) waitLocked(deadline time.Time) error {
	if c.wake == nil {
		c.wake = make(chan struct{})
	}
	ch := c.wake
	if deadline.IsZero() {
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
		return nil
	}
	d := time.Until(deadline)
	if d <= 0 {
		return os.ErrDeadlineExceeded
	}
	t := time.NewTimer(d)
	c.mu.Unlock()
	select {
	case <-ch:
	case <-t.C:
	}
	t.Stop()
	c.mu.Lock()
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

// readableLocked waits until there are bytes to read, or returns why there
// will be none (io.EOF once the other end finished). The caller holds c.mu
// and still does on return.
func (c *routeConn) readableLocked() error {
	for {
		switch {
		case c.closed:
			return net.ErrClosed
		case c.rbytes > 0:
			return nil
		case c.reof:
			return io.EOF
		case c.ended != nil:
			return c.ended
		case !c.rdl.IsZero() && !time.Now().Before(c.rdl):
			return os.ErrDeadlineExceeded
		}
		if err := c.waitLocked(c.rdl); err != nil {
			return err
		}
	}
}

// consumedLocked counts n bytes the reader has taken and returns credit to
// send back (0 until a quarter window has been consumed). The caller holds
// c.mu and has taken the bytes out of rq (and rbytes).
func (c *routeConn) consumedLocked(n int) int {
	c.unacked += n
	if c.unacked >= c.window/4 && c.out != nil {
		credit := c.unacked
		c.unacked = 0
		return credit
	}
	return 0
}

// giveCredit sends a WINDOW-UPDATE.
func (c *routeConn) giveCredit(out *link, outID uint32, credit int) {
	if credit > 0 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(credit))
		c.sendControl(out, outID, transport.PacketWindowUpdate, b[:])
	}
}

// Read returns received bytes; io.EOF once the other end closed the route.
func (c *routeConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	if err := c.readableLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	n := 0
	for n < len(p) && len(c.rq) > 0 {
		b := c.rq[0]
		k := copy(p[n:], b.b[c.roff:b.n])
		n += k
		c.roff += k
		if c.roff == b.n {
			c.rq[0] = nil
			c.rq = c.rq[1:]
			c.roff = 0
			b.put()
		}
	}
	c.rbytes -= n
	credit := c.consumedLocked(n)
	out, outID := c.out, c.outID
	c.mu.Unlock()
	c.giveCredit(out, outID, credit)
	return n, nil
}

// WriteTo writes what arrives to w until the other end finishes (nil) or
// the route fails: the received packets go to w as they are, several per
// system call, with no copy in between.
func (c *routeConn) WriteTo(w io.Writer) (int64, error) {
	var total int64
	var bufs []*pbuf
	var vec net.Buffers
	for {
		c.mu.Lock()
		if err := c.readableLocked(); err != nil {
			c.mu.Unlock()
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return total, err
		}
		bufs = append(bufs[:0], c.rq...)
		clear(c.rq)
		c.rq = c.rq[:0]
		vec = vec[:0]
		n := 0
		for i, b := range bufs {
			from := 0
			if i == 0 {
				from = c.roff
			}
			vec = append(vec, b.b[from:b.n])
			n += b.n - from
		}
		c.roff = 0
		c.rbytes -= n
		c.mu.Unlock()
		k, err := vec.WriteTo(w)
		total += k
		for _, b := range bufs {
			b.put()
		}
		if err != nil {
			return total, err
		}
		// Credit goes back once the bytes are written: at most a window
		// of the route's bytes is held here at any time.
		c.mu.Lock()
		credit := c.consumedLocked(n)
		out, outID := c.out, c.outID
		c.mu.Unlock()
		c.giveCredit(out, outID, credit)
	}
}

// reserve waits for at least least bytes of credit and takes up to want
// bytes of it; it returns the amount and where to send.
func (c *routeConn) reserve(least, want int) (int, *link, uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case c.closed:
			return 0, nil, 0, net.ErrClosed
		case c.wclosed:
			return 0, nil, 0, errWriteClosed
		case c.ended != nil:
			err := c.ended
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: the other end closed it", ErrRouteClosed)
			}
			return 0, nil, 0, err
		case !c.wdl.IsZero() && !time.Now().Before(c.wdl):
			return 0, nil, 0, os.ErrDeadlineExceeded
		}
		if c.credit >= least {
			break
		}
		if err := c.waitLocked(c.wdl); err != nil {
			return 0, nil, 0, err
		}
	}
	n := min(want, c.credit)
	c.credit -= n
	c.lastSent = time.Now()
	return n, c.out, c.outID, nil
}

// unreserve returns credit reserve took but did not use.
func (c *routeConn) unreserve(n int) {
	if n > 0 {
		c.mu.Lock()
		c.credit += n
		c.signalLocked()
		c.mu.Unlock()
	}
}

// send enqueues b, a DATA packet of n payload bytes.
func (c *routeConn) send(out *link, outID uint32, b *pbuf, n int) error {
	b.n = len(transport.MakePacket(b.b, transport.PacketData, outID, n))
	b.e2e = c.e2e
	if err := out.enqueue(outID, b); err != nil {
		c.end(fmt.Errorf("%w: %w", ErrRouteClosed, err))
		return fmt.Errorf("%w: %w", ErrRouteClosed, err)
	}
	return nil
}

// Write sends p as DATA packets, waiting for credit.
func (c *routeConn) Write(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		chunk, out, outID, err := c.reserve(1, min(len(p), transport.MaxPayload))
		if err != nil {
			return total, err
		}
		b := getPbuf()
		copy(b.b[transport.HeaderSize:], p[:chunk])
		if err := c.send(out, outID, b, chunk); err != nil {
			return total, err
		}
		p = p[chunk:]
		total += chunk
	}
	return total, nil
}

// ReadFrom sends what r yields until its end (nil) or an error, reading
// straight into the packets it sends.
func (c *routeConn) ReadFrom(r io.Reader) (int64, error) {
	if total, ok, err := c.readFromSocket(r, nil); ok {
		return total, err
	}
	var total int64
	for {
		chunk, out, outID, err := c.reserve(1, transport.MaxPayload)
		if err != nil {
			return total, err
		}
		b := getPbuf()
		n, rerr := r.Read(b.b[transport.HeaderSize : transport.HeaderSize+chunk])
		c.unreserve(chunk - n)
		if n > 0 {
			if err := c.send(out, outID, b, n); err != nil {
				return total, err
			}
			total += int64(n)
		} else {
			b.put()
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

func (c *routeConn) sendControl(out *link, rid uint32, typ transport.PacketType, payload []byte) bool {
	if out == nil {
		return false
	}
	b := getPbuf()
	copy(b.b[transport.HeaderSize:], payload)
	b.n = len(transport.MakePacket(b.b, typ, rid, len(payload)))
	return out.enqueue(rid, b) == nil
}

// handle takes a packet that arrived on the consume rule (on the transport
// reader: it never blocks).
func (c *routeConn) handle(p transport.Packet) {
	c.mu.Lock()
	c.lastRecv = time.Now()
	switch p.Type() {
	case transport.PacketData:
		pl := p.Payload()
		if c.closed {
			c.mu.Unlock()
			return
		}
		if len(pl) == 0 { // the other end's CloseWrite
			c.reof = true
			c.signalLocked()
			break
		}
		if c.rbytes+len(pl) > c.window+transport.MaxPayload {
			c.mu.Unlock()
			c.r.closeRoute(c, closeProtocol, errWindow)
			return
		}
		c.rbytes += len(pl)
		c.signalLocked()
		// Small payloads share a buffer: a window's worth of tiny packets
		// holds a window's worth of memory, not a buffer each.
		if k := len(c.rq); k > 0 && c.rq[k-1].n+len(pl) <= len(c.rq[k-1].b) {
			t := c.rq[k-1]
			t.n += copy(t.b[t.n:], pl)
			break
		}
		b := getPbuf()
		b.n = copy(b.b, pl)
		c.rq = append(c.rq, b)
	case transport.PacketWindowUpdate:
		if len(p.Payload()) == 4 {
			c.credit += int(binary.BigEndian.Uint32(p.Payload()))
			c.signalLocked()
		}
	case transport.PacketPing:
		out, outID := c.out, c.outID
		c.mu.Unlock()
		c.sendControl(out, outID, transport.PacketPong, p.Payload())
		return
	case transport.PacketPong:
		if len(p.Payload()) == 8 {
			select {
			case c.pong <- int64(binary.BigEndian.Uint64(p.Payload())):
			default:
			}
		}
	}
	c.mu.Unlock()
}

// CloseWrite tells the other end this one sends no more: an empty DATA
// packet, after everything written before it. Reading goes on.
func (c *routeConn) CloseWrite() error {
	c.mu.Lock()
	if c.closed || c.wclosed {
		c.mu.Unlock()
		return nil
	}
	if c.ended != nil {
		err := c.ended
		c.mu.Unlock()
		return err
	}
	c.wclosed = true
	c.signalLocked()
	out, outID := c.out, c.outID
	c.mu.Unlock()
	if !c.sendControl(out, outID, transport.PacketData, nil) {
		return fmt.Errorf("%w: its transport closed", ErrRouteClosed)
	}
	return nil
}

// end marks the route ended by the other side or the network (reads see
// err after the buffered bytes).
func (c *routeConn) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended == nil {
		c.ended = err
		c.signalLocked()
	}
}

// Close closes the route on every hop.
func (c *routeConn) Close() error { return c.closeWith(closeByEnd) }

// abort closes the route on every hop, the other end told it was reset.
func (c *routeConn) abort() error { return c.closeWith(closeAborted) }

func (c *routeConn) closeWith(code byte) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ended := c.ended != nil
	for _, b := range c.rq {
		b.put()
	}
	c.rq, c.rbytes = nil, 0
	c.signalLocked()
	out, outID := c.out, c.outID
	c.mu.Unlock()
	if !ended {
		c.sendControl(out, outID, transport.PacketClose, []byte{code})
	}
	c.r.removeRule(c.inID)
	return nil
}

// ping sends one route ping and waits for its pong.
func (c *routeConn) ping(ctx context.Context) (time.Duration, error) {
	c.mu.Lock()
	out, outID := c.out, c.outID
	c.mu.Unlock()
	sent := time.Now().UnixNano()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(sent))
	if !c.sendControl(out, outID, transport.PacketPing, b[:]) {
		return 0, ErrRouteClosed
	}
	for {
		select {
		case ts := <-c.pong:
			if ts == sent {
				return time.Duration(time.Now().UnixNano() - sent), nil
			}
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (c *routeConn) LocalAddr() net.Addr  { return c.local }
func (c *routeConn) RemoteAddr() net.Addr { return c.remote }

func (c *routeConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.signalLocked()
	c.mu.Unlock()
	return nil
}

func (c *routeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl = t
	c.signalLocked()
	c.mu.Unlock()
	return nil
}

func (c *routeConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.signalLocked()
	c.mu.Unlock()
	return nil
}

// Conn is an app connection over a route: the route's bytes, end-to-end
// encrypted (Noise KK) on routes of two or more hops. On those, the end of
// the stream is authenticated too (noise close-notify, sent by CloseWrite
// and Close): a hop that cuts the route short makes the reader see
// io.ErrUnexpectedEOF, not a clean io.EOF.
type Conn struct {
	net.Conn
	raw     *routeConn
	nc      *noise.Conn // nil on a 1-hop route
	once    sync.Once
	release func() // frees a dialled route's local port
}

// closeNotifyWait bounds how long Close waits for credit to send
// close-notify (a peer that stopped reading gets a route cut short).
const closeNotifyWait = 100 * time.Millisecond

// CloseWrite ends this direction: the other end reads io.EOF after what
// was written. Reading goes on.
func (c *Conn) CloseWrite() error {
	if c.nc != nil {
		return c.nc.CloseWrite()
	}
	return c.raw.CloseWrite()
}

// Close closes the route on every hop.
func (c *Conn) Close() error {
	if c.nc != nil {
		c.raw.SetWriteDeadline(time.Now().Add(closeNotifyWait))
		c.nc.CloseWrite()
	}
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
	return err
}

// Abort closes the route at once without an end of stream: the other end's
// reads fail (ErrRouteClosed, "reset by the other end") instead of seeing
// io.EOF, as a TCP reset does. A relay uses it when its other side failed,
// so a cut transfer never looks complete.
func (c *Conn) Abort() error {
	err := c.raw.abort()
	if c.nc != nil {
		c.nc.Close()
	}
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
	})
	return err
}

func newConn(raw *routeConn, nc *noise.Conn) *Conn {
	if nc == nil {
		return &Conn{Conn: raw, raw: raw}
	}
	nc.SetMaxPlaintext(transport.MaxPayload - noise.HeaderSize - noise.TagSize)
	nc.RequireCloseNotify()
	return &Conn{Conn: nc, raw: raw, nc: nc}
}

// WriteTo copies the route's bytes to w until the other end finishes; on
// a 1-hop route straight from the received packets.
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	if c.nc == nil {
		return c.raw.WriteTo(w)
	}
	return io.CopyBuffer(struct{ io.Writer }{w}, struct{ io.Reader }{c.nc}, make([]byte, noise.MaxPlaintext))
}

// ReadFrom sends r's bytes until its end; on a 1-hop route reading
// straight into the packets.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if c.nc == nil {
		return c.raw.ReadFrom(r)
	}
	if total, ok, err := c.raw.readFromSocket(r, c.nc); ok {
		return total, err
	}
	return io.CopyBuffer(struct{ io.Writer }{c.nc}, struct{ io.Reader }{r}, make([]byte, 256<<10))
}

// LocalAddr is our routing address.
func (c *Conn) LocalAddr() net.Addr { return c.raw.local }

// RemoteAddr is the other end's routing address.
func (c *Conn) RemoteAddr() net.Addr { return c.raw.remote }

// Hops is the path from the initiator to the responder.
func (c *Conn) Hops() []Hop { return c.raw.hops }

// HopRTTs is the round trip of each hop's transport when the route was set
// up (initiator side; nil on the responder).
func (c *Conn) HopRTTs() []time.Duration {
	c.raw.mu.Lock()
	defer c.raw.mu.Unlock()
	return c.raw.rtts
}

// Ping measures the route's round trip.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) { return c.raw.ping(ctx) }
