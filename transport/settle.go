package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// Settlement messages, each u16 length ‖ body:
//
//	HELLO   ver(1) ‖ type length(1) ‖ type ‖ time ms BE64 ‖ sig(65)
//	ANSWER  ver(1) ‖ status(1) ‖ sig(65)
//
// The signatures are the two edges' signatures of the transport discovery
// entry (edges, type, the HELLO's time), so both sides end with an entry
// the discovery will accept.
const settleVersion = 1

// SettleTimeout bounds the settlement exchange.
const SettleTimeout = 10 * time.Second

type answer byte

const (
	answerAccepted     answer = 0
	answerSimultaneous answer = 1 // both dialled: the lower key's dial wins, wait for it
	answerRefused      answer = 2
	answerBusy         answer = 3
)

func (a answer) String() string {
	switch a {
	case answerAccepted:
		return "accepted"
	case answerSimultaneous:
		return "simultaneous dial (the lower key's dial is kept)"
	case answerRefused:
		return "refused"
	case answerBusy:
		return "refused: the peer has too many transports"
	}
	return fmt.Sprintf("answer %d", byte(a))
}

var errSettle = errors.New("transport settlement failed")

// sendHello starts the settlement as the dialer and returns the entry it
// signed.
func sendHello(c Conn, sk cipher.SecKey, typ Type) (tpdisc.Entry, error) {
	e := tpdisc.NewEntry(sk.PubKey(), c.RemotePK(), string(typ))
	sig, err := e.Sign(sk)
	if err != nil {
		return e, err
	}
	b := []byte{settleVersion, byte(len(typ))}
	b = append(b, typ...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp))
	b = append(b, sig[:]...)
	return e, noise.WriteMsg(c, b)
}

// readHello reads the dialer's HELLO on an accepted Conn of type typ (local
// is our key) and returns the entry and the dialer's verified signature.
func readHello(c Conn, local cipher.PubKey, typ Type) (tpdisc.Entry, cipher.Sig, error) {
	b, err := noise.ReadMsg(c, 128)
	if err != nil {
		return tpdisc.Entry{}, cipher.Sig{}, fmt.Errorf("%w: reading hello: %w", errSettle, err)
	}
	return parseHello(b, c.RemotePK(), local, typ, time.Now())
}

// parseHello checks a HELLO body from remote against the listener's type
// and the clock.
func parseHello(b []byte, remote, local cipher.PubKey, typ Type, now time.Time) (tpdisc.Entry, cipher.Sig, error) {
	var e tpdisc.Entry
	if len(b) < 2 || b[0] != settleVersion || len(b) != 2+int(b[1])+8+cipher.SigSize {
		return e, cipher.Sig{}, fmt.Errorf("%w: malformed hello", errSettle)
	}
	got := Type(b[2 : 2+b[1]])
	if got != typ {
		return e, cipher.Sig{}, fmt.Errorf("%w: hello for %s on a %s listener", errSettle, got, typ)
	}
	off := 2 + int(b[1])
	ts := int64(binary.BigEndian.Uint64(b[off:]))
	if d := now.Sub(time.UnixMilli(ts)); d > tpdisc.MaxClockSkew || d < -tpdisc.MaxClockSkew {
		return e, cipher.Sig{}, fmt.Errorf("%w: hello time is %v off (check the clocks)", errSettle, d.Round(time.Second))
	}
	sig, err := cipher.SigFromBytes(b[off+8:])
	if err != nil {
		return e, cipher.Sig{}, fmt.Errorf("%w: %w", errSettle, err)
	}
	e = tpdisc.NewEntry(remote, local, string(typ))
	e.Timestamp = ts
	if err := e.VerifySig(remote, sig); err != nil {
		return e, cipher.Sig{}, fmt.Errorf("%w: the dialer's signature: %w", errSettle, err)
	}
	return e, sig, nil
}

func writeAnswer(c Conn, a answer, sig cipher.Sig) error {
	return noise.WriteMsg(c, append([]byte{settleVersion, byte(a)}, sig[:]...))
}

// readAnswer reads the acceptor's answer to e and verifies its signature.
func readAnswer(c Conn, e tpdisc.Entry) (answer, cipher.Sig, error) {
	b, err := noise.ReadMsg(c, 128)
	if err != nil {
		return 0, cipher.Sig{}, fmt.Errorf("%w: reading the answer: %w", errSettle, err)
	}
	return parseAnswer(b, e, c.RemotePK())
}

// parseAnswer checks an ANSWER body from remote to the HELLO of e.
func parseAnswer(b []byte, e tpdisc.Entry, remote cipher.PubKey) (answer, cipher.Sig, error) {
	if len(b) != 2+cipher.SigSize || b[0] != settleVersion {
		return 0, cipher.Sig{}, fmt.Errorf("%w: malformed answer", errSettle)
	}
	a := answer(b[1])
	if a != answerAccepted {
		return a, cipher.Sig{}, nil
	}
	sig, err := cipher.SigFromBytes(b[2:])
	if err == nil {
		err = e.VerifySig(remote, sig)
	}
	if err != nil {
		return a, cipher.Sig{}, fmt.Errorf("%w: the acceptor's signature: %w", errSettle, err)
	}
	return a, sig, nil
}
