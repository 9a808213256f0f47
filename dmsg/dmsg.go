// Package dmsg is skywire's relay network: clients keep sessions with dmsg
// servers and reach each other by public key and port through a server both
// can use, so two visors behind any NATs can still talk.
//
// Session: the client dials the server over TCP and runs Noise XK (it knows
// the server's key from the dmsg discovery; the server learns the client's),
// then yamux runs inside the Noise session: stream ids and windows are never
// in the clear.
//
// Stream, A → B through server S (both hold sessions with S):
//
//  1. A opens a yamux stream to S and sends a REQUEST (src A:port, dst
//     B:port, time, random nonce, Noise KK message 1), signed by A.
//  2. S checks that src is the session's key, the signature, the time
//     (±MaxClockSkew) and that the nonce is new; opens a stream on B's
//     session and forwards the request unchanged.
//  3. B checks the same, finds its listener on the port, and answers a
//     RESPONSE with Noise KK message 2 (or a status saying why not).
//  4. S forwards the response to A and, if accepted, splices the two
//     streams. From then on A and B speak Noise KK end to end: S sees only
//     keys, ports and sizes.
//
// Wire (each message is u16 length ‖ body on the stream):
//
//	REQUEST   ver(1) ‖ src pk(33) ‖ src port(2) ‖ dst pk(33) ‖ dst port(2) ‖ time ms(8) ‖ nonce(16)
//	          ‖ noise len(2) ‖ noise msg ‖ sig(65) over SHA-256("skywire-dmsg/1 request\n" ‖ all before sig)
//	RESPONSE  ver(1) ‖ status(1) ‖ origin(1: 0 server, 1 destination) ‖ noise len(2) ‖ noise msg
package dmsg

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// Version is the dmsg wire version.
const Version = 1

// Timing and limits.
const (
	// HandshakeTimeout bounds session handshakes and stream setup.
	HandshakeTimeout = 10 * time.Second
	// MaxClockSkew bounds a request's time.
	MaxClockSkew = 30 * time.Second
	// MaxStreamsPerSession is the default bound on the streams a server
	// relays for one session (each direction counted).
	MaxStreamsPerSession = 1024
	// AcceptBacklog bounds streams waiting for a listener's Accept.
	AcceptBacklog = 64
	// FirstEphemeralPort is where dial-side ports start.
	FirstEphemeralPort = 49152

	maxMessage = 1024
)

// Ports used by skywire visors.
const (
	PortTransport  = 45
	PortHypervisor = 46
	PortShell      = 22
)

// Status answers a stream request.
type Status byte

// Statuses.
const (
	StatusOK         Status = 0
	StatusNoSession  Status = 1 // the destination has no session with this server
	StatusNoListener Status = 2 // nothing listens on the destination port
	StatusRefused    Status = 3 // the request was stale, replayed, forged or misaddressed
	StatusBusy       Status = 4 // a stream or accept limit was reached
	StatusFailed     Status = 5 // something else went wrong
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "accepted"
	case StatusNoSession:
		return "the destination is not connected to this dmsg server"
	case StatusNoListener:
		return "nothing listens on that port"
	case StatusRefused:
		return "refused (stale, replayed or forged request)"
	case StatusBusy:
		return "too many streams"
	case StatusFailed:
		return "failed"
	}
	return "status " + strconv.Itoa(int(s))
}

// Errors.
var (
	// ErrRejected wraps a non-OK status (see StatusError).
	ErrRejected = errors.New("dmsg stream rejected")
	ErrMessage  = errors.New("malformed dmsg message")
	ErrClosed   = errors.New("dmsg: closed")
	// ErrNoRoute: no server both sides can use.
	ErrNoRoute = errors.New("dmsg: no usable server for the destination")
)

// StatusError is a stream request refused with a status.
type StatusError struct {
	Status Status
	By     string // "server" or "destination"
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%v by the %s: %v", ErrRejected, e.By, e.Status)
}
func (e *StatusError) Unwrap() error { return ErrRejected }

// A session answer is the server's first message in a session, right
// after the Noise handshake (u16 length ‖ body, inside Noise):
//
//	status (1) ‖ reason (UTF-8, ≤ maxReason bytes; empty when accepted)
//
// StatusOK: the session is registered (peers can reach the client through
// the server) and yamux starts; any other status: the server closes the
// session, and the reason says why.
const maxReason = 256

func encodeSessionAnswer(st Status, reason string) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	return append([]byte{byte(st)}, reason...)
}

func parseSessionAnswer(b []byte) (Status, string, error) {
	if len(b) < 1 || len(b) > 1+maxReason {
		return 0, "", fmt.Errorf("%w: session answer of %d bytes", ErrMessage, len(b))
	}
	return Status(b[0]), strings.ToValidUTF8(string(b[1:]), "?"), nil
}

// Addr is a dmsg address: public key and port.
type Addr struct {
	PK   cipher.PubKey
	Port uint16
}

// Network implements net.Addr.
func (Addr) Network() string { return "dmsg" }

// String is "pk:port".
func (a Addr) String() string { return a.PK.Hex() + ":" + strconv.Itoa(int(a.Port)) }

// request is a parsed REQUEST.
type request struct {
	Src, Dst Addr
	Time     time.Time
	Nonce    [16]byte
	Noise    []byte
}

const reqFixed = 1 + 33 + 2 + 33 + 2 + 8 + 16 + 2

func requestDigest(signed []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("skywire-dmsg/1 request\n"))
	h.Write(signed)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// encodeRequest builds and signs a REQUEST body.
func encodeRequest(r *request, sk cipher.SecKey) ([]byte, error) {
	if len(r.Noise) > maxMessage {
		return nil, fmt.Errorf("%w: noise message of %d bytes", ErrMessage, len(r.Noise))
	}
	b := make([]byte, 0, reqFixed+len(r.Noise)+cipher.SigSize)
	b = append(b, Version)
	b = append(b, r.Src.PK[:]...)
	b = binary.BigEndian.AppendUint16(b, r.Src.Port)
	b = append(b, r.Dst.PK[:]...)
	b = binary.BigEndian.AppendUint16(b, r.Dst.Port)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMilli()))
	b = append(b, r.Nonce[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Noise)))
	b = append(b, r.Noise...)
	sig, err := cipher.SignHash(sk, requestDigest(b))
	if err != nil {
		return nil, err
	}
	return append(b, sig[:]...), nil
}

// parseRequest checks a REQUEST body's form and signature (by src), not
// its freshness.
func parseRequest(b []byte) (*request, error) {
	if len(b) < reqFixed+cipher.SigSize {
		return nil, fmt.Errorf("%w: request of %d bytes", ErrMessage, len(b))
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: version %d", ErrMessage, b[0])
	}
	var r request
	var err error
	if r.Src.PK, err = cipher.PubKeyFromBytes(b[1:34]); err != nil {
		return nil, fmt.Errorf("%w: src: %w", ErrMessage, err)
	}
	r.Src.Port = binary.BigEndian.Uint16(b[34:])
	if r.Dst.PK, err = cipher.PubKeyFromBytes(b[36:69]); err != nil {
		return nil, fmt.Errorf("%w: dst: %w", ErrMessage, err)
	}
	r.Dst.Port = binary.BigEndian.Uint16(b[69:])
	r.Time = time.UnixMilli(int64(binary.BigEndian.Uint64(b[71:])))
	copy(r.Nonce[:], b[79:95])
	n := int(binary.BigEndian.Uint16(b[95:]))
	if len(b) != reqFixed+n+cipher.SigSize {
		return nil, fmt.Errorf("%w: request length does not match its noise message", ErrMessage)
	}
	r.Noise = b[reqFixed : reqFixed+n]
	sig, err := cipher.SigFromBytes(b[reqFixed+n:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMessage, err)
	}
	if err := cipher.VerifyHash(r.Src.PK, requestDigest(b[:reqFixed+n]), sig); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMessage, err)
	}
	return &r, nil
}

// Who answered a request.
const (
	originServer      = 0
	originDestination = 1
)

func encodeResponse(s Status, origin byte, noiseMsg []byte) []byte {
	b := []byte{Version, byte(s), origin}
	b = binary.BigEndian.AppendUint16(b, uint16(len(noiseMsg)))
	return append(b, noiseMsg...)
}

func parseResponse(b []byte) (Status, byte, []byte, error) {
	if len(b) < 5 || b[0] != Version || b[2] > originDestination {
		return 0, 0, nil, fmt.Errorf("%w: response of %d bytes", ErrMessage, len(b))
	}
	n := int(binary.BigEndian.Uint16(b[3:]))
	if len(b) != 5+n {
		return 0, 0, nil, fmt.Errorf("%w: response length does not match its noise message", ErrMessage)
	}
	return Status(b[1]), b[2], b[5:], nil
}

const maxResponse = 5 + maxMessage

const maxRequest = reqFixed + maxMessage + cipher.SigSize

func newNonce() [16]byte {
	var n [16]byte
	rand.Read(n[:])
	return n
}

// streamPurpose binds dmsg stream handshakes.
const streamPurpose = "dmsg-stream"

// sessionPurpose binds client–server session handshakes.
const sessionPurpose = "dmsg-session"
