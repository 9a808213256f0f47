package hypervisor

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/skyfleet/skywire/cipher"
	svcstore "github.com/skyfleet/skywire/svc/store"
)

// The hypervisor's database: the password hash, the sessions, the visors
// ever seen with their labels, and the audit log, in the namespace
// "hypervisor" of a svc/store store. By default that is a bbolt file
// (db_path, mode 0600, consistent across crashes, one process at a time);
// `store` may name a Redis instead, which several hypervisors can share.
//
// Keys: "auth/password" → argon2id hash; "session/<hex sha256(token)>" →
// session (with the session's lifetime as its TTL); "visor/<pk>" →
// seenVisor; "label/<pk>" → label; "audit/seq" → the last sequence number;
// "audit/e/<seq, 20 digits>" → AuditEntry.

const (
	keyPassword  = "auth/password"
	prefixSess   = "session/"
	prefixVisor  = "visor/"
	prefixLabel  = "label/"
	keyAuditSeq  = "audit/seq"
	prefixAudit  = "audit/e/"
	storeEntries = 1 << 20
	namespace    = "hypervisor"
)

// maxAudit is how many audit entries are kept (the oldest go first).
const maxAudit = 10000

// store is the database.
type store struct {
	s      svcstore.Store
	stores svcstore.Stores
}

// openStore opens the store spec names ("bbolt:PATH", "redis://…" or
// "memory"). A bbolt file in the layout of earlier builds (a bucket per
// kind) is moved into the new one first.
func openStore(spec string) (*store, error) {
	path, isBolt := strings.CutPrefix(spec, "bbolt:")
	var old oldData
	if isBolt {
		var err error
		if old, err = readOldDB(path); err != nil {
			return nil, err
		}
	}
	stores, err := svcstore.Open(spec)
	if err != nil {
		return nil, fmt.Errorf("the hypervisor's database (is another hypervisor running on it?): %w", err)
	}
	s, err := stores.Store(namespace, storeEntries)
	if err != nil {
		stores.Close()
		return nil, err
	}
	st := &store{s: s, stores: stores}
	if old != nil {
		if err := st.load(old); err != nil {
			stores.Close()
			return nil, fmt.Errorf("moving the database %s to its new layout: %w", path, err)
		}
		if err := dropOldBuckets(path, st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func (s *store) Close() error { return s.stores.Close() }

func bg() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (s *store) put(key string, value []byte, ttl time.Duration) error {
	ctx, cancel := bg()
	defer cancel()
	return svcstore.Update(ctx, s.s, key, ttl, func([]byte) ([]byte, error) { return value, nil })
}

func (s *store) get(key string) ([]byte, error) {
	ctx, cancel := bg()
	defer cancel()
	v, err := s.s.Get(ctx, key)
	if errors.Is(err, svcstore.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

func (s *store) del(key string) error {
	ctx, cancel := bg()
	defer cancel()
	return s.s.Delete(ctx, key)
}

func (s *store) scan(prefix string, fn func(key string, value []byte)) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.s.Scan(ctx, prefix, func(k string, v []byte) bool { fn(k, v); return true })
}

// passwordHash is the stored hash ("" when no password is set yet).
func (s *store) passwordHash() (string, error) {
	v, err := s.get(keyPassword)
	return string(v), err
}

// setPasswordHash stores hash and ends every session.
func (s *store) setPasswordHash(hash string) error {
	if err := s.put(keyPassword, []byte(hash), 0); err != nil {
		return err
	}
	var ids []string
	if err := s.scan(prefixSess, func(k string, _ []byte) { ids = append(ids, k) }); err != nil {
		return err
	}
	for _, k := range ids {
		if err := s.del(k); err != nil {
			return err
		}
	}
	return nil
}

// session is a logged-in browser or API client.
type session struct {
	CSRF    string    `json:"csrf"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Addr    string    `json:"addr"` // the client address it logged in from
}

func (s *store) putSession(id []byte, ss session) error {
	data, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	return s.put(prefixSess+hex.EncodeToString(id), data, max(time.Until(ss.Expires), time.Second))
}

// getSession returns the session id names, if it exists and has not
// expired.
func (s *store) getSession(id []byte, now time.Time) (session, bool) {
	var ss session
	data, err := s.get(prefixSess + hex.EncodeToString(id))
	ok := err == nil && data != nil && json.Unmarshal(data, &ss) == nil && now.Before(ss.Expires)
	return ss, ok
}

func (s *store) deleteSession(id []byte) error { return s.del(prefixSess + hex.EncodeToString(id)) }

// dropExpiredSessions removes the sessions that expired before now (the
// store's TTLs remove them too; this catches a clock that moved).
func (s *store) dropExpiredSessions(now time.Time) error {
	var gone []string
	err := s.scan(prefixSess, func(k string, v []byte) {
		var ss session
		if json.Unmarshal(v, &ss) != nil || !now.Before(ss.Expires) {
			gone = append(gone, k)
		}
	})
	for _, k := range gone {
		s.del(k)
	}
	return err
}

// seenVisor is what the database keeps of a visor between runs.
type seenVisor struct {
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Version   string    `json:"version,omitempty"`
}

func (s *store) putVisor(pk cipher.PubKey, v seenVisor) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.put(prefixVisor+pk.Hex(), data, 0)
}

func (s *store) deleteVisor(pk cipher.PubKey) error { return s.del(prefixVisor + pk.Hex()) }

func (s *store) visors() (map[cipher.PubKey]seenVisor, error) {
	out := map[cipher.PubKey]seenVisor{}
	err := s.scan(prefixVisor, func(k string, v []byte) {
		pk, err := cipher.ParsePubKey(strings.TrimPrefix(k, prefixVisor))
		var sv seenVisor
		if err == nil && json.Unmarshal(v, &sv) == nil {
			out[pk] = sv
		}
	})
	return out, err
}

// setLabel stores pk's label ("" removes it).
func (s *store) setLabel(pk cipher.PubKey, label string) error {
	if label == "" {
		return s.del(prefixLabel + pk.Hex())
	}
	return s.put(prefixLabel+pk.Hex(), []byte(label), 0)
}

func (s *store) labels() (map[cipher.PubKey]string, error) {
	out := map[cipher.PubKey]string{}
	err := s.scan(prefixLabel, func(k string, v []byte) {
		if pk, err := cipher.ParsePubKey(strings.TrimPrefix(k, prefixLabel)); err == nil {
			out[pk] = string(v)
		}
	})
	return out, err
}

// AuditEntry is one mutating action taken through the hypervisor.
type AuditEntry struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Session string    `json:"session"` // a short name of the session that acted ("" before login)
	Addr    string    `json:"addr"`    // the client's address
	Visor   string    `json:"visor,omitempty"`
	Action  string    `json:"action"`           // e.g. "POST /v1/transports" or "login"
	Detail  string    `json:"detail,omitempty"` // the request, secrets masked
	Status  int       `json:"status"`
	Error   string    `json:"error,omitempty"`
}

func auditKey(seq uint64) string { return fmt.Sprintf("%s%020d", prefixAudit, seq) }

// addAudit appends e (numbering it: the sequence is taken with a
// compare-and-swap, so hypervisors sharing a store never reuse a number)
// and drops the entry maxAudit before it.
func (s *store) addAudit(e *AuditEntry) error {
	ctx, cancel := bg()
	defer cancel()
	var seq uint64
	err := svcstore.Update(ctx, s.s, keyAuditSeq, 0, func(old []byte) ([]byte, error) {
		seq = 0
		if old != nil {
			n, err := strconv.ParseUint(string(old), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("audit sequence %q: %w", old, err)
			}
			seq = n
		}
		seq++
		return []byte(strconv.FormatUint(seq, 10)), nil
	})
	if err != nil {
		return err
	}
	e.Seq = seq
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := s.put(auditKey(seq), data, 0); err != nil {
		return err
	}
	if seq > maxAudit {
		s.del(auditKey(seq - maxAudit))
	}
	return nil
}

// audit returns up to n entries older than before (0: the newest), newest
// first.
func (s *store) audit(before uint64, n int) ([]AuditEntry, error) {
	var all []AuditEntry
	err := s.scan(prefixAudit, func(_ string, v []byte) {
		var e AuditEntry
		if json.Unmarshal(v, &e) == nil && (before == 0 || e.Seq < before) {
			all = append(all, e)
		}
	})
	slices.SortFunc(all, func(a, b AuditEntry) int {
		switch {
		case a.Seq > b.Seq:
			return -1
		case a.Seq < b.Seq:
			return 1
		}
		return 0
	})
	if len(all) > n {
		all = all[:n]
	}
	if all == nil {
		all = []AuditEntry{}
	}
	return all, err
}

// The layout of earlier builds: a bbolt bucket per kind.
var oldBuckets = []string{"auth", "sessions", "visors", "labels", "audit"}

type oldData map[string]map[string][]byte // bucket → key → value

// readOldDB reads an earlier build's buckets from the file at path (nil if
// it has none, or there is no file yet).
func readOldDB(path string) (oldData, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil // a new file
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("the database %s is held by another process (a running hypervisor?): stop it first", path)
		}
		return nil, fmt.Errorf("opening the database %s: %w", path, err)
	}
	defer db.Close()
	old := oldData{}
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range oldBuckets {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			m := map[string][]byte{}
			b.ForEach(func(k, v []byte) error {
				m[string(k)] = slices.Clone(v)
				return nil
			})
			old[name] = m
		}
		return nil
	})
	if err != nil || len(old) == 0 {
		return nil, err
	}
	return old, nil
}

// load writes an earlier layout's entries in this one.
func (s *store) load(old oldData) error {
	if h := old["auth"]["password"]; h != nil {
		if err := s.put(keyPassword, h, 0); err != nil {
			return err
		}
	}
	for k, v := range old["visors"] {
		if pk, ok := keyOf(k); ok {
			if err := s.put(prefixVisor+pk.Hex(), v, 0); err != nil {
				return err
			}
		}
	}
	for k, v := range old["labels"] {
		if pk, ok := keyOf(k); ok {
			if err := s.put(prefixLabel+pk.Hex(), v, 0); err != nil {
				return err
			}
		}
	}
	var last uint64
	for _, v := range old["audit"] {
		var e AuditEntry
		if json.Unmarshal(v, &e) == nil && e.Seq > 0 {
			if err := s.put(auditKey(e.Seq), v, 0); err != nil {
				return err
			}
			last = max(last, e.Seq)
		}
	}
	if last > 0 {
		if err := s.put(keyAuditSeq, []byte(strconv.FormatUint(last, 10)), 0); err != nil {
			return err
		}
	}
	return nil // sessions are not kept: everyone logs in again once
}

func keyOf(raw string) (cipher.PubKey, bool) {
	var pk cipher.PubKey
	if len(raw) != len(pk) {
		return pk, false
	}
	copy(pk[:], raw)
	return pk, true
}

// dropOldBuckets removes the earlier layout's buckets once their entries
// are in the new one; st is closed for it and opened again.
func dropOldBuckets(path string, st *store) error {
	st.stores.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("opening the database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range oldBuckets {
			if tx.Bucket([]byte(name)) != nil {
				if err := tx.DeleteBucket([]byte(name)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	db.Close()
	if err != nil {
		return fmt.Errorf("the database %s: %w", path, err)
	}
	stores, err := svcstore.Open("bbolt:" + path)
	if err != nil {
		return err
	}
	s, err := stores.Store(namespace, storeEntries)
	if err != nil {
		stores.Close()
		return err
	}
	st.s, st.stores = s, stores
	return nil
}
