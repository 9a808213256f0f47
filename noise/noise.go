// Package noise is skywire's encryption layer: Noise XK and KK handshakes
// over secp256k1 (github.com/flynn/noise with our DH function) and Conn, a
// framed AEAD net.Conn on top of any reliable byte stream.
//
// Suites: Noise_XK_secp256k1_ChaChaPoly_SHA256 (the initiator knows the
// responder's key, the responder learns the initiator's: transports and dmsg
// sessions) and Noise_KK_secp256k1_ChaChaPoly_SHA256 (both know each other:
// dmsg streams and routes). The prologue binds "skywire-noise/1" and the
// purpose, so a handshake for one purpose cannot complete as another.
//
// Wire (docs/protocol.md, "Noise"):
//
//	handshake message  u16 length ‖ noise message     (XK: 3 messages, KK: 2)
//	transport frame    u16 length ‖ AEAD ciphertext   (length 16..65535)
//
// Every handshake payload starts with a capability byte (bit 0: AES
// hardware); the transport phase uses AES-256-GCM when both sides set it,
// else ChaCha20-Poly1305, keyed by the handshake's Split.
//
// Transport frames use implicit per-direction counter nonces from 0; each
// side rekeys its sending key (Noise REKEY) after 2^20 frames or 1 GiB of
// ciphertext, whichever comes first, and the receiver follows at the same
// frame. A frame that fails to decrypt, a truncated stream, or a length
// below 16 closes the Conn. There is no plaintext mode.
//
// A frame with no plaintext (length 16) is close-notify: the sender will
// write nothing more (Conn.CloseWrite), and the reader returns io.EOF. With
// RequireCloseNotify, the carrier ending without one is io.ErrUnexpectedEOF:
// whoever carries the frames can stop them, but cannot make a cut-short
// stream look complete.
package noise

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	fnoise "github.com/flynn/noise"

	"github.com/skyfleet/skywire/cipher"
)

// Version is bound into every prologue.
const Version = "skywire-noise/1"

// Sizes.
const (
	// TagSize is the AEAD tag appended to every frame.
	TagSize = 16
	// MaxFrame is the largest frame body (ciphertext) on the wire.
	MaxFrame = 65535
	// MaxPlaintext is the most plaintext one frame carries.
	MaxPlaintext = MaxFrame - TagSize
	// HeaderSize is the length prefix of a frame or handshake message.
	HeaderSize = 2
)

// Rekey thresholds (per direction).
const (
	RekeyFrames = 1 << 20
	RekeyBytes  = 1 << 30
)

// DefaultHandshakeTimeout bounds Run when its context has no deadline.
const DefaultHandshakeTimeout = 10 * time.Second

// Pattern is a Noise handshake pattern.
type Pattern int

// The patterns skywire uses.
const (
	XK Pattern = iota
	KK
)

func (p Pattern) String() string {
	switch p {
	case XK:
		return "XK"
	case KK:
		return "KK"
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

// Errors.
var (
	// ErrHandshake wraps every handshake failure: wrong key, bad message,
	// timeout, closed connection.
	ErrHandshake = errors.New("noise handshake failed")
	// ErrDecrypt: a frame failed authentication. The Conn is closed.
	ErrDecrypt = errors.New("noise: frame failed authentication")
	// ErrFrame: a frame's length is impossible. The Conn is closed.
	ErrFrame = errors.New("noise: malformed frame")
)

// Config describes one side of a handshake.
type Config struct {
	Pattern   Pattern
	Initiator bool
	// LocalSK is our static key.
	LocalSK cipher.SecKey
	// RemotePK is the peer's static key: required for the XK initiator and
	// for both KK sides; learned by the XK responder.
	RemotePK cipher.PubKey
	// Purpose names what the session is for ("transport", "dmsg-session", …);
	// it is bound into the prologue and must match on both sides.
	Purpose string
	// Binding, if set, is bound into the prologue too: a value both sides
	// derive from the channel beneath (a TLS exporter), so a handshake
	// that completes proves they share that channel (Authenticate).
	Binding []byte

	// noAES makes this side claim no AES hardware (tests of the ChaChaPoly
	// transport phase on machines that have it).
	noAES bool
}

var suite = fnoise.NewCipherSuite(secp256k1DH{}, fnoise.CipherChaChaPoly, fnoise.HashSHA256)

// Handshake is a handshake in progress, for protocols that carry the noise
// messages themselves (dmsg stream requests). Run does the common case.
//
// Every handshake message's payload starts with this side's capability byte
// (bit 0: AES hardware), which picks the transport-phase cipher; the Noise
// transcript authenticates it.
type Handshake struct {
	cfg        Config
	hs         *fnoise.HandshakeState
	caps       byte // ours
	remoteCaps byte // the peer's, from its first message
	send, recv *cipherState
}

// NewHandshake starts a handshake.
func NewHandshake(cfg Config) (*Handshake, error) {
	if cfg.LocalSK.IsZero() {
		return nil, fmt.Errorf("%w: no local key", ErrHandshake)
	}
	needRemote := cfg.Pattern == KK || (cfg.Pattern == XK && cfg.Initiator)
	if needRemote {
		if err := cfg.RemotePK.Check(); err != nil {
			return nil, fmt.Errorf("%w: remote key: %w", ErrHandshake, err)
		}
	}
	var pattern fnoise.HandshakePattern
	switch cfg.Pattern {
	case XK:
		pattern = fnoise.HandshakeXK
	case KK:
		pattern = fnoise.HandshakeKK
	default:
		return nil, fmt.Errorf("%w: unknown pattern %v", ErrHandshake, cfg.Pattern)
	}
	local := cfg.LocalSK.PubKey()
	fc := fnoise.Config{
		CipherSuite:   suite,
		Pattern:       pattern,
		Initiator:     cfg.Initiator,
		Prologue:      append([]byte(Version+" "+cfg.Purpose+"\n"), cfg.Binding...),
		StaticKeypair: fnoise.DHKey{Private: cfg.LocalSK.Bytes(), Public: local[:]},
	}
	if needRemote {
		fc.PeerStatic = append([]byte(nil), cfg.RemotePK[:]...)
	}
	hs, err := fnoise.NewHandshakeState(fc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	h := &Handshake{cfg: cfg, hs: hs}
	if hasAESHardware() && !cfg.noAES {
		h.caps = capAESHardware
	}
	return h, nil
}

// Done reports whether the handshake is complete.
func (h *Handshake) Done() bool { return h.send != nil }

// WriteMessage produces our next handshake message, carrying payload
// (encrypted where the pattern allows; keep it empty unless the protocol
// says otherwise).
func (h *Handshake) WriteMessage(payload []byte) ([]byte, error) {
	msg, cs1, cs2, err := h.hs.WriteMessage(nil, append([]byte{h.caps}, payload...))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	h.split(cs1, cs2)
	return msg, nil
}

// ReadMessage consumes the peer's next handshake message and returns its
// payload.
func (h *Handshake) ReadMessage(msg []byte) ([]byte, error) {
	payload, cs1, cs2, err := h.hs.ReadMessage(nil, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w (wrong key, or not a %s %s peer)", ErrHandshake, err, h.cfg.Pattern, h.cfg.Purpose)
	}
	if len(payload) == 0 {
		return nil, fmt.Errorf("%w: the peer's message has no capability byte", ErrHandshake)
	}
	h.remoteCaps = payload[0]
	h.split(cs1, cs2)
	return payload[1:], nil
}

// Cipher is the transport-phase cipher the handshake chose.
func (h *Handshake) Cipher() Cipher {
	if h.caps&h.remoteCaps&capAESHardware != 0 {
		return AESGCM
	}
	return ChaChaPoly
}

func (h *Handshake) split(cs1, cs2 *fnoise.CipherState) {
	if cs1 == nil {
		return
	}
	if !h.cfg.Initiator {
		cs1, cs2 = cs2, cs1
	}
	h.send = newCipherState(h.Cipher(), cs1.UnsafeKey(), cs1.Nonce())
	h.recv = newCipherState(h.Cipher(), cs2.UnsafeKey(), cs2.Nonce())
}

// RemotePK is the peer's static key (for the XK responder, known once the
// handshake is done).
func (h *Handshake) RemotePK() cipher.PubKey {
	if h.cfg.RemotePK.IsNull() {
		var pk cipher.PubKey
		copy(pk[:], h.hs.PeerStatic())
		return pk
	}
	return h.cfg.RemotePK
}

// Conn wraps c, over which the handshake ran, in the session's encryption.
func (h *Handshake) Conn(c net.Conn) (*Conn, error) {
	if !h.Done() {
		return nil, fmt.Errorf("%w: not complete", ErrHandshake)
	}
	remote := h.RemotePK()
	if err := remote.Check(); err != nil {
		return nil, fmt.Errorf("%w: peer sent a bad static key: %w", ErrHandshake, err)
	}
	return newConn(c, h.send, h.recv, h.cfg.LocalSK.PubKey(), remote), nil
}

// Run performs the handshake over c (messages framed as u16 length ‖
// message) and returns the encrypted Conn. The context bounds it (default
// DefaultHandshakeTimeout). On failure c is left open for the caller to
// close; no application byte has crossed.
func Run(ctx context.Context, c net.Conn, cfg Config) (*Conn, error) {
	h, err := exchange(ctx, c, cfg)
	if err != nil {
		return nil, err
	}
	return h.Conn(c)
}

// Authenticate performs the handshake over c like Run but keeps no
// session: it returns the peer's authenticated key. It is for channels that
// already encrypt (QUIC's TLS 1.3): cfg.Binding must then be a value both
// ends derive from that channel's keys (a TLS exporter), which ties the
// channel to the authenticated keys.
func Authenticate(ctx context.Context, c net.Conn, cfg Config) (cipher.PubKey, error) {
	if len(cfg.Binding) < 32 {
		return cipher.PubKey{}, fmt.Errorf("%w: Authenticate needs a channel binding of 32 bytes or more", ErrHandshake)
	}
	h, err := exchange(ctx, c, cfg)
	if err != nil {
		return cipher.PubKey{}, err
	}
	remote := h.RemotePK()
	if err := remote.Check(); err != nil {
		return cipher.PubKey{}, fmt.Errorf("%w: peer sent a bad static key: %w", ErrHandshake, err)
	}
	return remote, nil
}

// exchange runs the handshake's messages over c.
func exchange(ctx context.Context, c net.Conn, cfg Config) (*Handshake, error) {
	h, err := NewHandshake(cfg)
	if err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultHandshakeTimeout)
	}
	if err := c.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	write := cfg.Initiator
	for !h.Done() {
		if write {
			msg, err := h.WriteMessage(nil)
			if err != nil {
				return nil, err
			}
			if err := WriteMsg(c, msg); err != nil {
				return nil, handshakeIOError(ctx, err)
			}
		} else {
			msg, err := ReadMsg(c, maxHandshakeMessage)
			if err != nil {
				return nil, handshakeIOError(ctx, err)
			}
			if _, err := h.ReadMessage(msg); err != nil {
				return nil, err
			}
		}
		write = !write
	}
	if !stop() && ctx.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, ctx.Err())
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return h, nil
}

func handshakeIOError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ErrHandshake, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: timed out", ErrHandshake)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the peer closed the connection (it rejected our key, or expected another key or protocol)", ErrHandshake)
	}
	return fmt.Errorf("%w: %w", ErrHandshake, err)
}

// WriteMsg writes u16 length ‖ body in one Write: the framing of handshake
// messages, and of the messages protocols exchange around them (dmsg
// requests, transport settlement).
func WriteMsg(w io.Writer, body []byte) error {
	if len(body) > MaxFrame {
		return fmt.Errorf("%w: message of %d bytes", ErrFrame, len(body))
	}
	buf := make([]byte, HeaderSize+len(body))
	binary.BigEndian.PutUint16(buf, uint16(len(body)))
	copy(buf[HeaderSize:], body)
	_, err := w.Write(buf)
	return err
}

// ReadMsg reads one message written by WriteMsg, refusing (before
// allocating) one longer than max.
func ReadMsg(r io.Reader, max int) ([]byte, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > max {
		return nil, fmt.Errorf("%w: message of %d bytes (at most %d)", ErrFrame, n, max)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// maxHandshakeMessage bounds what we allocate for a handshake message: the
// largest one (XK message 3, with a payload) is far below it.
const maxHandshakeMessage = 1024
