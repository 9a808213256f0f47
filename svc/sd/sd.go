// Package sd is the service discovery: where visors advertise the servers
// they run (a VPN exit, a SOCKS proxy, a public visor) and users find them.
// This file holds the entries; server.go the service; client.go its client.
//
// An entry is signed by the key it advertises over a fixed binary layout
// (every string preceded by its length in one byte):
//
//	signed = SHA-256("skywire-sd/1\n" ‖ type ‖ pk(33) ‖ BE16(port) ‖ BE64(timestamp ms) ‖ version ‖ country ‖ label)
//
// The service stores an entry only if the signature verifies, its
// timestamp is fresh and newer than the stored one's (a replay is
// refused); it expires after EntryTTL unless the visor registers it again
// (every HeartbeatInterval, with a new timestamp), and its key may delete
// it. Readers verify every entry: the service is not trusted to vouch.
package sd

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// Timing: a server that stops disappears within EntryTTL.
const (
	EntryTTL          = time.Minute
	HeartbeatInterval = 20 * time.Second
	MaxClockSkew      = time.Minute
)

// The entry types.
const (
	TypeVPN   = "vpn"   // a vpn-server (app port 44)
	TypeProxy = "proxy" // a skysocks server (app port 3)
	TypeVisor = "visor" // a public visor (port 0)
)

// ErrInvalid wraps every reason an entry is refused.
var ErrInvalid = errors.New("invalid service entry")

// Entry is one advertised server.
type Entry struct {
	Type      string        `json:"type"`
	PK        cipher.PubKey `json:"pk"`
	Port      uint16        `json:"port"`
	Version   string        `json:"version"`
	Country   string        `json:"country,omitempty"` // ISO 3166-1 alpha-2, as the operator says
	Label     string        `json:"label,omitempty"`
	Timestamp int64         `json:"timestamp"` // unix ms, when it was signed
}

// Key is where the entry lives: type, key and port.
func (e *Entry) Key() string {
	return e.Type + "/" + e.PK.Hex() + "/" + strconv.Itoa(int(e.Port))
}

func (e *Entry) digest() [32]byte {
	h := sha256.New()
	h.Write([]byte("skywire-sd/1\n"))
	str := func(s string) {
		h.Write([]byte{byte(len(s))})
		h.Write([]byte(s))
	}
	str(e.Type)
	h.Write(e.PK[:])
	var b [10]byte
	binary.BigEndian.PutUint16(b[:2], e.Port)
	binary.BigEndian.PutUint64(b[2:], uint64(e.Timestamp))
	h.Write(b[:])
	str(e.Version)
	str(e.Country)
	str(e.Label)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

var (
	versionText = regexp.MustCompile(`^[0-9A-Za-z.+_~-]{1,32}$`)
	countryCode = regexp.MustCompile(`^[A-Z]{2}$`)
	labelText   = regexp.MustCompile(`^[^\x00-\x1f\x7f]{0,64}$`)
)

// Check reports whether e is well formed (not whether it is signed).
func (e *Entry) Check() error {
	switch e.Type {
	case TypeVPN, TypeProxy:
		if e.Port == 0 {
			return fmt.Errorf("%w: a %s entry needs its app's port", ErrInvalid, e.Type)
		}
	case TypeVisor:
		if e.Port != 0 {
			return fmt.Errorf("%w: a visor entry has port 0", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: type %q (vpn, proxy or visor)", ErrInvalid, e.Type)
	}
	if err := e.PK.Check(); err != nil {
		return fmt.Errorf("%w: key: %w", ErrInvalid, err)
	}
	if !versionText.MatchString(e.Version) {
		return fmt.Errorf("%w: version %q", ErrInvalid, e.Version)
	}
	if e.Country != "" && !countryCode.MatchString(e.Country) {
		return fmt.Errorf("%w: country %q (two capital letters, ISO 3166-1)", ErrInvalid, e.Country)
	}
	if !labelText.MatchString(e.Label) {
		return fmt.Errorf("%w: a label is at most 64 characters, none of them control characters", ErrInvalid)
	}
	return nil
}

// Sign stamps e with the time now and returns it signed by sk, whose key
// it must advertise.
func (e Entry) Sign(sk cipher.SecKey, now time.Time) (*SignedEntry, error) {
	if sk.PubKey() != e.PK {
		return nil, fmt.Errorf("%w: the signer is not the entry's key", ErrInvalid)
	}
	e.Timestamp = now.UnixMilli()
	if err := e.Check(); err != nil {
		return nil, err
	}
	sig, err := cipher.SignHash(sk, e.digest())
	if err != nil {
		return nil, err
	}
	return &SignedEntry{Entry: e, Sig: sig}, nil
}

// SignedEntry is an entry with its key's signature.
type SignedEntry struct {
	Entry Entry      `json:"entry"`
	Sig   cipher.Sig `json:"sig"`
}

// Verify checks the entry's form and signature.
func (se *SignedEntry) Verify() error {
	if err := se.Entry.Check(); err != nil {
		return err
	}
	if err := cipher.VerifyHash(se.Entry.PK, se.Entry.digest(), se.Sig); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalid, err)
	}
	return nil
}

// Seen is when the entry was last signed.
func (se *SignedEntry) Seen() time.Time { return time.UnixMilli(se.Entry.Timestamp) }
