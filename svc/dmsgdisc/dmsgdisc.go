// Package dmsgdisc is the dmsg discovery service: where dmsg servers publish
// their address and dmsg clients publish which servers they can be reached
// through. This file holds the entries; server.go the service; client.go
// its client.
//
// Every entry is signed by its owner over its exact JSON bytes, so the
// service (and every reader) can check it without re-encoding JSON:
//
//	{"entry": {...Entry...}, "sig": hex(Sign(SHA-256("skywire-dmsgdisc/1\n" ‖ entry bytes)))}
//
// The service accepts an entry only if the signature verifies for entry.pk,
// its timestamp is within MaxClockSkew of the service's clock, and its
// sequence is larger than the stored one; an entry with a server part only
// from a key the operator trusts as a dmsg server of this network (anyone
// else could list fake servers and eclipse the real ones). Entries expire
// after EntryTTL unless refreshed.
package dmsgdisc

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// Limits and timing.
const (
	EntryTTL         = 5 * time.Minute
	RefreshInterval  = 30 * time.Second // also how soon a restarted discovery knows an entry again
	MaxClockSkew     = time.Minute
	MaxDelegated     = 16
	maxEntryBytes    = 2 << 10 // a client entry with MaxDelegated servers is about 1.2 KiB
	signatureDomain  = "skywire-dmsgdisc/1\n"
	defaultPageLimit = 512
)

// Entry is what a dmsg client or server publishes about itself.
type Entry struct {
	PK        cipher.PubKey `json:"pk"`
	Sequence  uint64        `json:"sequence"`
	Timestamp int64         `json:"timestamp"` // unix milliseconds
	Client    *ClientInfo   `json:"client,omitempty"`
	Server    *ServerInfo   `json:"server,omitempty"`
}

// ClientInfo: the servers a client has sessions with.
type ClientInfo struct {
	DelegatedServers []cipher.PubKey `json:"delegated_servers"`
}

// ServerInfo: where a server listens and how many more sessions it takes.
type ServerInfo struct {
	Address           string `json:"address"`
	AvailableSessions int    `json:"available_sessions"`
}

// SignedEntry is an entry's JSON bytes with its owner's signature.
type SignedEntry struct {
	Entry json.RawMessage `json:"entry"`
	Sig   cipher.Sig      `json:"sig"`
}

// ErrInvalid wraps every reason an entry is refused.
var ErrInvalid = errors.New("invalid entry")

func digest(entry []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(signatureDomain))
	h.Write(entry)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Sign encodes e and signs it with sk (whose key must be e.PK).
func Sign(e *Entry, sk cipher.SecKey) (SignedEntry, error) {
	if sk.PubKey() != e.PK {
		return SignedEntry{}, fmt.Errorf("%w: signing key is not the entry's", ErrInvalid)
	}
	raw, err := json.Marshal(e)
	if err != nil {
		return SignedEntry{}, err
	}
	sig, err := cipher.SignHash(sk, digest(raw))
	if err != nil {
		return SignedEntry{}, err
	}
	return SignedEntry{Entry: raw, Sig: sig}, nil
}

// encode writes se with the entry's bytes exactly as signed (encoding/json
// would re-escape them).
func (se SignedEntry) encode() []byte {
	out := make([]byte, 0, len(se.Entry)+160)
	out = append(out, `{"entry":`...)
	out = append(out, se.Entry...)
	out = append(out, `,"sig":"`...)
	out = append(out, se.Sig.Hex()...)
	return append(out, `"}`...)
}

// Open checks the signature and the entry's form, and returns the entry.
// It does not check freshness (the service does, against its clock).
func (se SignedEntry) Open() (*Entry, error) {
	if len(se.Entry) == 0 || len(se.Entry) > maxEntryBytes {
		return nil, fmt.Errorf("%w: entry of %d bytes", ErrInvalid, len(se.Entry))
	}
	var e Entry
	if err := json.Unmarshal(se.Entry, &e); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := e.PK.Check(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err := cipher.VerifyHash(e.PK, digest(se.Entry), se.Sig); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if e.Client == nil && e.Server == nil {
		return nil, fmt.Errorf("%w: neither client nor server", ErrInvalid)
	}
	if e.Client != nil && len(e.Client.DelegatedServers) > MaxDelegated {
		return nil, fmt.Errorf("%w: %d delegated servers (at most %d)", ErrInvalid, len(e.Client.DelegatedServers), MaxDelegated)
	}
	if e.Server != nil && (e.Server.Address == "" || e.Server.AvailableSessions < 0) {
		return nil, fmt.Errorf("%w: a server entry needs an address and available_sessions ≥ 0", ErrInvalid)
	}
	return &e, nil
}
