// Package tpdisc is the transport discovery service: the public record of
// which transports exist between which visors, which the route finder turns
// into a graph. This file holds the entries; server.go the service;
// client.go its client.
//
// An entry names a transport by an ID derived from its two edges (sorted)
// and its type, and is signed by both edges over a fixed binary layout:
//
//	ID    = SHA-256("skywire-tp-id/1\n" ‖ edge0(33) ‖ edge1(33) ‖ type)[:16]
//	signed = SHA-256("skywire-tpdisc/1\n" ‖ ID(16) ‖ edge0(33) ‖ edge1(33) ‖ BE64(timestamp ms) ‖ type)
//
// The service stores an entry only if both signatures verify and the
// timestamp is fresh; it expires after EntryTTL unless an edge sends a
// heartbeat, and either edge may delete it.
package tpdisc

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// Timing.
const (
	EntryTTL          = 3 * time.Minute
	HeartbeatInterval = 30 * time.Second // also how soon a lost entry is noticed and registered again
	MaxClockSkew      = time.Minute
)

// ErrInvalid wraps every reason an entry is refused.
var ErrInvalid = errors.New("invalid transport entry")

// ID identifies a transport: one per edge pair and type.
type ID [16]byte

// MakeID derives the ID of the transport of type typ between a and b.
func MakeID(a, b cipher.PubKey, typ string) ID {
	lo, hi := SortEdges(a, b)
	h := sha256.New()
	h.Write([]byte("skywire-tp-id/1\n"))
	h.Write(lo[:])
	h.Write(hi[:])
	h.Write([]byte(typ))
	var id ID
	copy(id[:], h.Sum(nil))
	return id
}

// SortEdges orders two keys by their bytes.
func SortEdges(a, b cipher.PubKey) (cipher.PubKey, cipher.PubKey) {
	if b.Less(a) {
		return b, a
	}
	return a, b
}

// String is the 32-character hex form.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// MarshalText encodes the ID as hex.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses hex.
func (id *ID) UnmarshalText(b []byte) error {
	p, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseID parses 32 hex characters.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 32 {
		return id, fmt.Errorf("transport id %q: want 32 hex characters", s)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("transport id %q: not hex", s)
	}
	return id, nil
}

var typeName = regexp.MustCompile(`^[a-z0-9-]{1,16}$`)

// Entry describes one transport.
type Entry struct {
	ID        ID               `json:"id"`
	Edges     [2]cipher.PubKey `json:"edges"` // sorted
	Type      string           `json:"type"`
	Timestamp int64            `json:"timestamp"` // unix ms, when the edges agreed on it
}

// NewEntry is the entry for a transport of type typ between a and b, now.
func NewEntry(a, b cipher.PubKey, typ string) Entry {
	lo, hi := SortEdges(a, b)
	return Entry{ID: MakeID(a, b, typ), Edges: [2]cipher.PubKey{lo, hi}, Type: typ, Timestamp: time.Now().UnixMilli()}
}

func (e *Entry) digest() [32]byte {
	h := sha256.New()
	h.Write([]byte("skywire-tpdisc/1\n"))
	h.Write(e.ID[:])
	h.Write(e.Edges[0][:])
	h.Write(e.Edges[1][:])
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(e.Timestamp))
	h.Write(ts[:])
	h.Write([]byte(e.Type))
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// EdgeIndex is the position of pk in the edges, or -1.
func (e *Entry) EdgeIndex(pk cipher.PubKey) int {
	for i, edge := range e.Edges {
		if edge == pk {
			return i
		}
	}
	return -1
}

// Sign returns sk's signature of e; sk must be an edge's.
func (e *Entry) Sign(sk cipher.SecKey) (cipher.Sig, error) {
	if e.EdgeIndex(sk.PubKey()) < 0 {
		return cipher.Sig{}, fmt.Errorf("%w: the signer is not an edge", ErrInvalid)
	}
	return cipher.SignHash(sk, e.digest())
}

// VerifySig checks that sig is edge pk's signature of e.
func (e *Entry) VerifySig(pk cipher.PubKey, sig cipher.Sig) error {
	if e.EdgeIndex(pk) < 0 {
		return fmt.Errorf("%w: %s is not an edge", ErrInvalid, pk.Short())
	}
	return cipher.VerifyHash(pk, e.digest(), sig)
}

// Check reports whether e is well formed (not whether it is signed).
func (e *Entry) Check() error {
	for _, edge := range e.Edges {
		if err := edge.Check(); err != nil {
			return fmt.Errorf("%w: edge: %w", ErrInvalid, err)
		}
	}
	if !e.Edges[0].Less(e.Edges[1]) {
		return fmt.Errorf("%w: edges must be two different keys in ascending order", ErrInvalid)
	}
	if !typeName.MatchString(e.Type) {
		return fmt.Errorf("%w: type %q", ErrInvalid, e.Type)
	}
	if e.ID != MakeID(e.Edges[0], e.Edges[1], e.Type) {
		return fmt.Errorf("%w: id does not match the edges and type", ErrInvalid)
	}
	return nil
}

// SignedEntry is an entry with both edges' signatures (Sigs[i] is Edges[i]'s).
type SignedEntry struct {
	Entry Entry         `json:"entry"`
	Sigs  [2]cipher.Sig `json:"sigs"`
}

// Verify checks the entry's form and both signatures.
func (se *SignedEntry) Verify() error {
	if err := se.Entry.Check(); err != nil {
		return err
	}
	d := se.Entry.digest()
	for i := range se.Sigs {
		if err := cipher.VerifyHash(se.Entry.Edges[i], d, se.Sigs[i]); err != nil {
			return fmt.Errorf("%w: edge %d's signature: %w", ErrInvalid, i, err)
		}
	}
	return nil
}
