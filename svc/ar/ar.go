// Package ar is the address resolver: visors tell it where they can be
// reached (stcpr: a TCP port; sudph: a UDP socket, seen through their NAT),
// and other visors ask it, by public key, where to dial. For sudph it also
// tells the target to punch towards the dialer, so both NATs open.
//
// HTTP (requests signed with package httpauth):
//
//	POST   /v1/bind/stcpr        {"port": N, "local_addrs": ["ip", …]} → {"addr": "observed-ip:N"}
//	DELETE /v1/bind/stcpr
//	GET    /v1/resolve/stcpr/PK  → {"addr": "ip:port", "local_addrs": […]} (local_addrs only to a requester behind the same public IP)
//	GET    /v1/resolve/sudph/PK  → {"addr": "ip:port"}, and a PUNCH-REQUEST to PK naming the requester
//
// UDP, on the same port number (first byte below 0x40, so the socket can be
// shared with QUIC):
//
//	0x01 BIND       visor → AR    pk(33) ‖ BE64 unix-ms ‖ nonce(16) ‖ sig(65)
//	                              sig over SHA-256("skywire-ar/1 bind\n" ‖ pk ‖ time ‖ nonce)
//	0x02 BOUND      AR → visor    nonce(16) ‖ observed "ip:port"
//	0x03 PUNCH-REQ  AR → visor    dialer pk(33) ‖ dialer's observed "ip:port"
//	0x04 PUNCH      visor → visor sender pk(33)
//
// A visor sends BIND every BindInterval; a binding lives BindTTL.
package ar

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// UDP packet types.
const (
	TypeBind     byte = 0x01
	TypeBound    byte = 0x02
	TypePunchReq byte = 0x03
	TypePunch    byte = 0x04
)

// Timing.
const (
	BindInterval = 15 * time.Second
	BindTTL      = 60 * time.Second
	STCPRTTL     = 3 * time.Minute
	// STCPRRebind is how often a visor renews its stcpr binding (and so
	// how soon a restarted resolver knows it again).
	STCPRRebind = 30 * time.Second
	// MaxClockSkew bounds a BIND's time.
	MaxClockSkew = 30 * time.Second
)

const bindSize = 1 + cipher.PubKeySize + 8 + 16 + cipher.SigSize

// ErrPacket: a UDP packet that is not what it claims to be.
var ErrPacket = errors.New("malformed address-resolver packet")

func bindDigest(pk cipher.PubKey, ts []byte, nonce []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("skywire-ar/1 bind\n"))
	h.Write(pk[:])
	h.Write(ts)
	h.Write(nonce)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// EncodeBind makes a BIND packet signed by sk, and returns its nonce (the
// BOUND answer echoes it).
func EncodeBind(sk cipher.SecKey, now time.Time) ([]byte, [16]byte, error) {
	var nonce [16]byte
	rand.Read(nonce[:])
	pk := sk.PubKey()
	b := make([]byte, 0, bindSize)
	b = append(b, TypeBind)
	b = append(b, pk[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(now.UnixMilli()))
	b = append(b, nonce[:]...)
	sig, err := cipher.SignHash(sk, bindDigest(pk, b[1+cipher.PubKeySize:1+cipher.PubKeySize+8], nonce[:]))
	if err != nil {
		return nil, nonce, err
	}
	return append(b, sig[:]...), nonce, nil
}

// Bind is a parsed, verified BIND.
type Bind struct {
	PK    cipher.PubKey
	Time  time.Time
	Nonce [16]byte
}

// ParseBind verifies a BIND packet's signature (not its freshness).
func ParseBind(p []byte) (Bind, error) {
	var b Bind
	if len(p) != bindSize || p[0] != TypeBind {
		return b, fmt.Errorf("%w: bind of %d bytes", ErrPacket, len(p))
	}
	pk, err := cipher.PubKeyFromBytes(p[1 : 1+cipher.PubKeySize])
	if err != nil {
		return b, fmt.Errorf("%w: %w", ErrPacket, err)
	}
	off := 1 + cipher.PubKeySize
	ts := p[off : off+8]
	nonce := p[off+8 : off+24]
	sig, err := cipher.SigFromBytes(p[off+24:])
	if err != nil {
		return b, fmt.Errorf("%w: %w", ErrPacket, err)
	}
	if err := cipher.VerifyHash(pk, bindDigest(pk, ts, nonce), sig); err != nil {
		return b, fmt.Errorf("%w: %w", ErrPacket, err)
	}
	b.PK = pk
	b.Time = time.UnixMilli(int64(binary.BigEndian.Uint64(ts)))
	copy(b.Nonce[:], nonce)
	return b, nil
}

// EncodeBound is the AR's answer to a BIND.
func EncodeBound(nonce [16]byte, observed string) []byte {
	return append(append([]byte{TypeBound}, nonce[:]...), observed...)
}

// ParseBound returns the echoed nonce and the observed address.
func ParseBound(p []byte) ([16]byte, string, error) {
	var nonce [16]byte
	if len(p) < 1+16+3 || len(p) > 1+16+64 || p[0] != TypeBound {
		return nonce, "", fmt.Errorf("%w: bound of %d bytes", ErrPacket, len(p))
	}
	copy(nonce[:], p[1:17])
	return nonce, string(p[17:]), nil
}

// EncodePunchRequest asks a visor to punch towards dialer at addr.
func EncodePunchRequest(dialer cipher.PubKey, addr string) []byte {
	return append(append([]byte{TypePunchReq}, dialer[:]...), addr...)
}

// ParsePunchRequest returns the dialer and its address.
func ParsePunchRequest(p []byte) (cipher.PubKey, string, error) {
	if len(p) < 1+cipher.PubKeySize+3 || len(p) > 1+cipher.PubKeySize+64 || p[0] != TypePunchReq {
		return cipher.PubKey{}, "", fmt.Errorf("%w: punch request of %d bytes", ErrPacket, len(p))
	}
	pk, err := cipher.PubKeyFromBytes(p[1 : 1+cipher.PubKeySize])
	if err != nil {
		return pk, "", fmt.Errorf("%w: %w", ErrPacket, err)
	}
	return pk, string(p[1+cipher.PubKeySize:]), nil
}

// EncodePunch is the packet visors send each other to open their NATs.
func EncodePunch(sender cipher.PubKey) []byte {
	return append([]byte{TypePunch}, sender[:]...)
}

// IsPunch reports whether p is a PUNCH.
func IsPunch(p []byte) bool {
	return len(p) == 1+cipher.PubKeySize && p[0] == TypePunch
}
