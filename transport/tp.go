package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// Errors a transport closes with.
var (
	ErrDead     = errors.New("the peer stopped answering")
	errReplaced = errors.New("replaced by a newer transport to the same peer")
	errRemoved  = errors.New("removed on request")
)

// DefaultWriteTimeout bounds one packet write: a peer that takes no data
// for this long is gone (or unusable), and its transport closes.
const DefaultWriteTimeout = 20 * time.Second

// readBufSize holds two whole packets, so after moving a partial packet to
// the front there is always room to decrypt a full frame straight in.
const readBufSize = 2 * MaxPacket

// Transport is one settled connection to a peer.
type Transport struct {
	id      tpdisc.ID
	typ     Type
	remote  cipher.PubKey
	dialer  bool
	created time.Time
	conn    Conn
	batch   batchWriter // conn, if it writes frames in batches (noise.Conn)
	log     *zap.Logger
	sk      cipher.SecKey // signs the entry anew (PacketResign)

	emu   sync.Mutex // guards entry
	entry tpdisc.SignedEntry

	wmu          sync.Mutex    // serialises writes to conn; guards wdeadline, pieces
	wdeadline    time.Time     // the write deadline last set on conn
	pieces       []noise.Piece // WritePackets' scratch
	writeTimeout time.Duration

	// Bytes and packets sent (by writers) and received (by the reader), on
	// separate cache lines so the two sides do not contend for one.
	sent, sentPkts atomic.Uint64
	_              [48]byte
	recv, recvPkts atomic.Uint64
	_              [48]byte
	rtt            atomic.Int64 // last round trip, ns (0: not measured yet)
	lastRecv       atomic.Int64 // unix ns of the last packet received

	pongs    chan [8]byte        // pings to answer: the reader never writes itself
	resigns  chan int64          // resign requests to answer (acceptor), one at a time
	resigned chan resignedAnswer // answers to our resign request (dialer)
	lastSign time.Time           // keepLoop only: when we last signed for the peer

	done    chan struct{}
	once    sync.Once
	doneErr error // why it closed; set before done closes
}

func newTransport(c Conn, typ Type, se tpdisc.SignedEntry, dialer bool, sk cipher.SecKey, writeTimeout time.Duration, log *zap.Logger) *Transport {
	t := &Transport{
		id: se.Entry.ID, typ: typ, remote: c.RemotePK(), dialer: dialer, created: time.Now(), sk: sk,
		conn: c, entry: se, pongs: make(chan [8]byte, 1), done: make(chan struct{}), writeTimeout: writeTimeout,
		resigns: make(chan int64, 1), resigned: make(chan resignedAnswer, 1),
	}
	t.batch, _ = c.(batchWriter)
	t.log = log.With(zap.String("tp_id", t.id.String()), zap.String("remote", t.remote.Hex()), zap.String("type", string(typ)))
	t.lastRecv.Store(time.Now().UnixNano())
	return t
}

// ID identifies the transport (the same on both edges).
func (t *Transport) ID() tpdisc.ID { return t.id }

// Type is the transport's type.
func (t *Transport) Type() Type { return t.typ }

// Remote is the peer's key.
func (t *Transport) Remote() cipher.PubKey { return t.remote }

// RemoteAddr is where the peer is (a dmsg.Addr for a dmsg transport).
func (t *Transport) RemoteAddr() net.Addr { return t.conn.RemoteAddr() }

// Dialer reports whether this visor dialled it.
func (t *Transport) Dialer() bool { return t.dialer }

// Created is when it settled.
func (t *Transport) Created() time.Time { return t.created }

// Entry is the discovery entry both edges signed (the newest, once
// re-signed).
func (t *Transport) Entry() tpdisc.SignedEntry {
	t.emu.Lock()
	defer t.emu.Unlock()
	return t.entry
}

// Sent and Received count packet bytes; SentPackets and ReceivedPackets
// count packets.
func (t *Transport) Sent() uint64            { return t.sent.Load() }
func (t *Transport) Received() uint64        { return t.recv.Load() }
func (t *Transport) SentPackets() uint64     { return t.sentPkts.Load() }
func (t *Transport) ReceivedPackets() uint64 { return t.recvPkts.Load() }

// RTT is the last measured round-trip time (0 before the first pong).
func (t *Transport) RTT() time.Duration { return time.Duration(t.rtt.Load()) }

// Done is closed when the transport is closed.
func (t *Transport) Done() <-chan struct{} { return t.done }

// Err says why the transport closed (nil while open).
func (t *Transport) Err() error {
	select {
	case <-t.done:
		return t.doneErr
	default:
		return nil
	}
}

// WritePacket sends p (header and payload). It may be called from any
// goroutine; writes are serialised.
func (t *Transport) WritePacket(p Packet) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.writeLocked(p)
}

// Outgoing is a packet for WritePackets. E2E: its payload is encrypted and
// authenticated end to end (DATA of a route of two or more hops).
type Outgoing struct {
	Packet Packet
	E2E    bool
}

// batchWriter is a Conn that writes several frames per system call and can
// leave bytes that are already encrypted end to end as they are
// (noise.Conn.WriteBatch).
type batchWriter interface {
	WriteBatch(pieces []noise.Piece) (int, error)
}

// WritePackets sends out in order, in as few system calls as the
// connection allows. Where it can (Noise over TCP or dmsg), a non-empty E2E
// DATA packet is a split frame: its header encrypted (the route id stays
// hidden), its payload not encrypted a second time. It may be called from
// any goroutine; writes are serialised.
func (t *Transport) WritePackets(out []Outgoing) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := t.prepareWriteLocked(); err != nil {
		return err
	}
	var err error
	n := 0
	if t.batch != nil {
		pieces := t.pieces[:0]
		for _, o := range out {
			p := o.Packet
			if o.E2E && len(p) > HeaderSize && p.Type() == PacketData {
				pieces = append(pieces, noise.Piece{Sealed: p[:HeaderSize], Clear: p[HeaderSize:]})
			} else {
				pieces = append(pieces, noise.Piece{Sealed: p})
			}
			n += len(p)
		}
		_, err = t.batch.WriteBatch(pieces)
		clear(pieces)
		t.pieces = pieces[:0]
	} else {
		for _, o := range out {
			if _, err = t.conn.Write(o.Packet); err != nil {
				break
			}
			n += len(o.Packet)
		}
	}
	return t.wroteLocked(n, len(out), err)
}

// tryWritePacket sends p unless a write is in progress (then the peer is
// hearing from us anyway).
func (t *Transport) tryWritePacket(p Packet) {
	if t.wmu.TryLock() {
		t.writeLocked(p)
		t.wmu.Unlock()
	}
}

func (t *Transport) writeLocked(p Packet) error {
	if err := t.prepareWriteLocked(); err != nil {
		return err
	}
	_, err := t.conn.Write(p)
	return t.wroteLocked(len(p), 1, err)
}

// prepareWriteLocked renews the write deadline when due and fails if the
// transport is closed.
func (t *Transport) prepareWriteLocked() error {
	// Renew the deadline only when half of it is gone: not a timer
	// update per packet.
	if now := time.Now(); t.wdeadline.Sub(now) < t.writeTimeout/2 {
		t.wdeadline = now.Add(t.writeTimeout)
		t.conn.SetWriteDeadline(t.wdeadline)
	}
	select {
	case <-t.done:
		return fmt.Errorf("%w: %w", ErrClosed, t.doneErr)
	default:
	}
	return nil
}

// wroteLocked counts n bytes in pkts packets sent, or closes the transport
// on err.
func (t *Transport) wroteLocked(n, pkts int, err error) error {
	if err != nil {
		t.close(fmt.Errorf("write: %w", err))
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	t.sent.Add(uint64(n))
	t.sentPkts.Add(uint64(pkts))
	return nil
}

// Close closes the transport.
func (t *Transport) Close() error {
	t.close(errRemoved)
	return nil
}

func (t *Transport) close(err error) {
	t.once.Do(func() {
		t.doneErr = err
		close(t.done)
		t.conn.Close()
	})
}

// readLoop reads packets until the connection fails, answering route-0
// control packets and passing the rest to handle. Packets point into the
// read buffer: handle must not keep them.
func (t *Transport) readLoop(handle func(*Transport, Packet)) {
	buf := make([]byte, readBufSize)
	start, end := 0, 0
	onPacket := func(p Packet) {
		t.recv.Add(uint64(len(p)))
		t.recvPkts.Add(1)
		if p.RouteID() == 0 && isControl(p.Type()) {
			t.control(p)
			return
		}
		if handle != nil {
			handle(t, p)
		}
	}
	for {
		n, err := parsePackets(buf[start:end], onPacket)
		start += n
		if err != nil {
			t.close(fmt.Errorf("read: %w", err))
			return
		}
		if n > 0 {
			t.lastRecv.Store(time.Now().UnixNano())
		}
		if start == end {
			start, end = 0, 0
		} else if len(buf)-end < MaxPacket {
			copy(buf, buf[start:end])
			end -= start
			start = 0
		}
		k, err := t.conn.Read(buf[end:])
		end += k
		if err != nil {
			parsePackets(buf[start:end], onPacket)
			t.close(fmt.Errorf("read: %w", err))
			return
		}
	}
}

// isControl: the packet types a transport answers itself on route 0 (the
// others on route 0, route setup, go to the handler).
func isControl(t PacketType) bool {
	return t == PacketPing || t == PacketPong || t == PacketKeepalive || t == PacketResign || t == PacketResigned
}

// control handles a route-0 control packet.
func (t *Transport) control(p Packet) {
	switch p.Type() {
	case PacketPing:
		var ts [8]byte
		copy(ts[:], p.Payload())
		select {
		case t.pongs <- ts:
		default: // one pong pending already: the peer will ping again
		}
	case PacketPong:
		if len(p.Payload()) == 8 {
			sent := int64(binary.BigEndian.Uint64(p.Payload()))
			if rtt := time.Now().UnixNano() - sent; rtt > 0 && rtt < int64(time.Minute) {
				t.rtt.Store(rtt)
			}
		}
	case PacketResign:
		if len(p.Payload()) == 8 && !t.dialer {
			select {
			case t.resigns <- int64(binary.BigEndian.Uint64(p.Payload())):
			default: // one pending already
			}
		}
	case PacketResigned:
		if pl := p.Payload(); len(pl) == 8+cipher.SigSize && t.dialer {
			var a resignedAnswer
			a.ts = int64(binary.BigEndian.Uint64(pl))
			copy(a.sig[:], pl[8:])
			select {
			case t.resigned <- a:
			default:
			}
		}
	}
}

type resignedAnswer struct {
	ts  int64
	sig cipher.Sig
}

// resignEvery bounds how often an acceptor signs for its peer.
const resignEvery = 5 * time.Second

// answerResign signs the entry anew at ts for the dialer, if ts is fresh
// and newer than the entry we hold (at most once per resignEvery).
func (t *Transport) answerResign(ts int64) {
	if time.Since(t.lastSign) < resignEvery {
		return
	}
	t.emu.Lock()
	cur := t.entry
	t.emu.Unlock()
	if d := time.Since(time.UnixMilli(ts)); d > tpdisc.MaxClockSkew || d < -tpdisc.MaxClockSkew || ts <= cur.Entry.Timestamp {
		return
	}
	e := cur.Entry
	e.Timestamp = ts
	sig, err := e.Sign(t.sk)
	if err != nil {
		return
	}
	t.lastSign = time.Now()
	i := e.EdgeIndex(t.sk.PubKey())
	next := tpdisc.SignedEntry{Entry: e, Sigs: cur.Sigs}
	next.Sigs[i] = sig
	next.Sigs[1-i] = cipher.Sig{} // the dialer's comes with its registration
	t.emu.Lock()
	t.entry = next
	t.emu.Unlock()
	pl := binary.BigEndian.AppendUint64(nil, uint64(ts))
	t.tryWritePacket(NewPacket(PacketResigned, 0, append(pl, sig[:]...)))
}

// Resign has the peer sign the transport's entry anew with the time now,
// signs it too, and returns the new entry (the dialer's side; the
// discovery refuses a re-registration whose signatures are old).
func (t *Transport) Resign(ctx context.Context) (tpdisc.SignedEntry, error) {
	if !t.dialer {
		return tpdisc.SignedEntry{}, errors.New("only a transport's dialer re-signs its entry")
	}
	ts := time.Now().UnixMilli()
	t.emu.Lock()
	e := t.entry.Entry
	t.emu.Unlock()
	if ts <= e.Timestamp {
		ts = e.Timestamp + 1
	}
	e.Timestamp = ts
	ours, err := e.Sign(t.sk)
	if err != nil {
		return tpdisc.SignedEntry{}, err
	}
	select { // a stale answer to an earlier request
	case <-t.resigned:
	default:
	}
	if err := t.WritePacket(NewPacket(PacketResign, 0, binary.BigEndian.AppendUint64(nil, uint64(ts)))); err != nil {
		return tpdisc.SignedEntry{}, err
	}
	for {
		select {
		case a := <-t.resigned:
			if a.ts != ts {
				continue
			}
			if err := e.VerifySig(t.remote, a.sig); err != nil {
				return tpdisc.SignedEntry{}, fmt.Errorf("the peer's new signature: %w", err)
			}
			se := tpdisc.SignedEntry{Entry: e}
			se.Sigs[e.EdgeIndex(t.sk.PubKey())] = ours
			se.Sigs[e.EdgeIndex(t.remote)] = a.sig
			t.emu.Lock()
			t.entry = se
			t.emu.Unlock()
			return se, nil
		case <-t.done:
			return tpdisc.SignedEntry{}, ErrClosed
		case <-ctx.Done():
			return tpdisc.SignedEntry{}, fmt.Errorf("the peer did not re-sign the entry: %w", ctx.Err())
		}
	}
}

// keepLoop pings every interval, answers pings, and closes the transport if
// nothing arrived for deadAfter.
func (t *Transport) keepLoop(interval, deadAfter time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	ping := func() {
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], uint64(time.Now().UnixNano()))
		t.tryWritePacket(NewPacket(PacketPing, 0, ts[:]))
	}
	ping() // a first RTT at once
	// The dead-peer check runs when the silence could first pass
	// deadAfter, not on the ping tick: a dead peer is noticed deadAfter
	// after its last packet, not up to an interval later.
	dead := time.NewTimer(deadAfter)
	defer dead.Stop()
	for {
		select {
		case <-t.done:
			return
		case ts := <-t.pongs:
			t.tryWritePacket(NewPacket(PacketPong, 0, ts[:]))
		case ts := <-t.resigns:
			t.answerResign(ts)
		case <-dead.C:
			silent := time.Since(time.Unix(0, t.lastRecv.Load()))
			if silent >= deadAfter {
				t.close(fmt.Errorf("%w: nothing received for %v", ErrDead, silent.Round(100*time.Millisecond)))
				return
			}
			dead.Reset(deadAfter - silent)
		case <-tick.C:
			ping()
		}
	}
}
