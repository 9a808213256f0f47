package router

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/transport"
)

// Payloads of the route-level packet types (the packet header is the
// transport's: type ‖ route id ‖ length). Big-endian throughout.
//
//	SETUP     (route 0) signed ‖ sig(65) ‖ rev id(4)
//	          signed = ver(1) ‖ flags(1) ‖ nonce(16) ‖ time ms(8) ‖ src pk(33) ‖ src port(2)
//	                   ‖ dst pk(33) ‖ dst port(2) ‖ hop count n(1) ‖ n × (pk(33) ‖ type len(1) ‖ type)
//	                   ‖ noise len(2) ‖ noise msg (KK message 1 if flags&e2e)
//	          sig: the source's signature of SHA-256("skywire-route/1 setup\n" ‖ signed)
//	          rev id: the sender's id for packets coming back to it on this link (each hop
//	          rewrites it)
//	SETUP-OK  (on the reverse path) fwd id(4) ‖ hop count m(1) ‖ m × rtt µs(4) ‖ noise len(2) ‖ noise msg
//	          fwd id: the sender's id for packets going forward to it (each hop rewrites it);
//	          rtt: each hop appends the round trip of its next transport
//	SETUP-ERR (on the reverse path) origin pk(33) ‖ reason (UTF-8, ≤ 256 bytes)
//	CLOSE     code(1)   0 closed by an end, 1 expired, 2 transport lost, 3 protocol error
//	WINDOW-UPDATE  credit(4): bytes the receiver consumed
//	PING / PONG    BE64 unix ns (echoed)
//	KEEPALIVE      empty
//	DATA           the route's bytes (Noise KK frames on a route of two or more hops)
const wireVersion = 1

// Setup flags.
const (
	flagE2E = 0x01 // end-to-end Noise KK (every route of two or more hops)
)

// Limits.
const (
	MaxHops      = 16
	maxReason    = 256
	setupNoiseMx = 512
)

// errWire: a malformed route packet.
var errWire = errors.New("malformed route packet")

// Hop is one link of a path: the visor it reaches and the transport type.
type Hop struct {
	PK   cipher.PubKey
	Type transport.Type
}

// setupMsg is a parsed SETUP.
type setupMsg struct {
	flags    byte
	nonce    [16]byte
	time     time.Time
	src, dst Addr
	hops     []Hop
	noise    []byte
	signed   []byte // the signed part, as received
	sig      cipher.Sig
	revID    uint32
}

func setupDigest(signed []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("skywire-route/1 setup\n"))
	h.Write(signed)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// encodeSetup builds the signed part of a SETUP and signs it.
func encodeSetup(m *setupMsg, sk cipher.SecKey) error {
	if len(m.hops) == 0 || len(m.hops) > MaxHops {
		return fmt.Errorf("%w: %d hops (1 to %d)", errWire, len(m.hops), MaxHops)
	}
	b := []byte{wireVersion, m.flags}
	b = append(b, m.nonce[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.time.UnixMilli()))
	b = append(b, m.src.PK[:]...)
	b = binary.BigEndian.AppendUint16(b, m.src.Port)
	b = append(b, m.dst.PK[:]...)
	b = binary.BigEndian.AppendUint16(b, m.dst.Port)
	b = append(b, byte(len(m.hops)))
	for _, h := range m.hops {
		b = append(b, h.PK[:]...)
		b = append(b, byte(len(h.Type)))
		b = append(b, h.Type...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.noise)))
	b = append(b, m.noise...)
	sig, err := cipher.SignHash(sk, setupDigest(b))
	if err != nil {
		return err
	}
	m.signed, m.sig = b, sig
	return nil
}

// packet renders the SETUP payload with the current rev id.
func (m *setupMsg) payload() []byte {
	out := make([]byte, 0, len(m.signed)+cipher.SigSize+4)
	out = append(out, m.signed...)
	out = append(out, m.sig[:]...)
	return binary.BigEndian.AppendUint32(out, m.revID)
}

// parseSetup checks a SETUP's form and signature (by src), not freshness.
func parseSetup(p []byte) (*setupMsg, error) {
	if len(p) < cipher.SigSize+4+1 {
		return nil, fmt.Errorf("%w: setup of %d bytes", errWire, len(p))
	}
	signed := p[:len(p)-cipher.SigSize-4]
	m := &setupMsg{signed: signed}
	var err error
	if m.sig, err = cipher.SigFromBytes(p[len(signed) : len(signed)+cipher.SigSize]); err != nil {
		return nil, fmt.Errorf("%w: %w", errWire, err)
	}
	m.revID = binary.BigEndian.Uint32(p[len(p)-4:])
	r := reader{b: signed}
	if v := r.byte(); v != wireVersion {
		return nil, fmt.Errorf("%w: version %d", errWire, v)
	}
	m.flags = r.byte()
	copy(m.nonce[:], r.bytes(16))
	m.time = time.UnixMilli(int64(r.u64()))
	m.src.PK = r.pk()
	m.src.Port = r.u16()
	m.dst.PK = r.pk()
	m.dst.Port = r.u16()
	n := int(r.byte())
	if n == 0 || n > MaxHops {
		return nil, fmt.Errorf("%w: %d hops", errWire, n)
	}
	for i := 0; i < n; i++ {
		pk := r.pk()
		typ := transport.Type(r.bytes(int(r.byte())))
		m.hops = append(m.hops, Hop{PK: pk, Type: typ})
	}
	m.noise = r.bytes(int(r.u16()))
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("%w: setup layout", errWire)
	}
	if len(m.noise) > setupNoiseMx {
		return nil, fmt.Errorf("%w: noise message of %d bytes", errWire, len(m.noise))
	}
	if err := cipher.VerifyHash(m.src.PK, setupDigest(signed), m.sig); err != nil {
		return nil, fmt.Errorf("%w: %w", errWire, err)
	}
	return m, nil
}

// setupOK is a parsed SETUP-OK.
type setupOK struct {
	fwdID uint32
	rtts  []time.Duration
	noise []byte
}

func (o *setupOK) payload() []byte {
	b := binary.BigEndian.AppendUint32(nil, o.fwdID)
	b = append(b, byte(len(o.rtts)))
	for _, d := range o.rtts {
		b = binary.BigEndian.AppendUint32(b, uint32(min(d.Microseconds(), 1<<32-1)))
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(o.noise)))
	return append(b, o.noise...)
}

func parseSetupOK(p []byte) (*setupOK, error) {
	r := reader{b: p}
	o := &setupOK{fwdID: r.u32()}
	n := int(r.byte())
	if n > MaxHops {
		return nil, fmt.Errorf("%w: %d rtts", errWire, n)
	}
	for i := 0; i < n; i++ {
		o.rtts = append(o.rtts, time.Duration(r.u32())*time.Microsecond)
	}
	o.noise = r.bytes(int(r.u16()))
	if r.err != nil || len(r.b) != 0 || o.fwdID == 0 {
		return nil, fmt.Errorf("%w: setup-ok layout", errWire)
	}
	return o, nil
}

func setupErrPayload(origin cipher.PubKey, reason string) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	return append(append([]byte(nil), origin[:]...), reason...)
}

func parseSetupErr(p []byte) (cipher.PubKey, string, error) {
	if len(p) < cipher.PubKeySize || len(p) > cipher.PubKeySize+maxReason {
		return cipher.PubKey{}, "", fmt.Errorf("%w: setup-err of %d bytes", errWire, len(p))
	}
	var pk cipher.PubKey
	copy(pk[:], p)
	return pk, string(p[cipher.PubKeySize:]), nil
}

// Close codes.
const (
	closeByEnd      = 0
	closeExpired    = 1
	closeTransport  = 2
	closeProtocol   = 3
	closeAborted    = 4 // the other end reset the route (its app's socket failed)
	closeCodeString = "closed by the other end|expired|a transport on the path closed|protocol error|reset by the other end"
)

// reader consumes a byte slice, remembering the first shortfall.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = errWire
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.bytes(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) pk() cipher.PubKey {
	var pk cipher.PubKey
	copy(pk[:], r.bytes(cipher.PubKeySize))
	return pk
}
