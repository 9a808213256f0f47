package hypervisor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/skyfleet/skywire/cipher"
)

// The hypervisor's database (db_path, mode 0600): the password hash, the
// sessions, the visors ever seen with their labels, and the audit log.
// bbolt keeps it consistent across crashes; one process holds it at a time.

var (
	bucketAuth     = []byte("auth")     // "password" → argon2id hash
	bucketSessions = []byte("sessions") // sha256(token) → session
	bucketVisors   = []byte("visors")   // pk → seenVisor
	bucketLabels   = []byte("labels")   // pk → label
	bucketAudit    = []byte("audit")    // big-endian sequence → AuditEntry
)

var keyPassword = []byte("password")

// maxAudit is how many audit entries are kept (the oldest go first).
const maxAudit = 10000

// store is the database.
type store struct {
	db   *bolt.DB
	path string
}

// openStore opens (or creates) the database at path, mode 0600.
func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("the database %s is held by another process (a running hypervisor?): stop it first", path)
		}
		return nil, fmt.Errorf("opening the database %s: %w", path, err)
	}
	// An older file may have been made with a looser mode.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketAuth, bucketSessions, bucketVisors, bucketLabels, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return &store{db: db, path: path}, nil
}

func (s *store) Close() error { return s.db.Close() }

// passwordHash is the stored hash ("" when no password is set yet).
func (s *store) passwordHash() (string, error) {
	var h string
	err := s.db.View(func(tx *bolt.Tx) error {
		h = string(tx.Bucket(bucketAuth).Get(keyPassword))
		return nil
	})
	return h, err
}

// setPasswordHash stores hash and ends every session.
func (s *store) setPasswordHash(hash string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketAuth).Put(keyPassword, []byte(hash)); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketSessions); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bucketSessions)
		return err
	})
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
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put(id, data) })
}

// getSession returns the session id names, if it exists and has not
// expired.
func (s *store) getSession(id []byte, now time.Time) (session, bool) {
	var ss session
	var ok bool
	s.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(bucketSessions).Get(id)
		ok = data != nil && json.Unmarshal(data, &ss) == nil && now.Before(ss.Expires)
		return nil
	})
	return ss, ok
}

func (s *store) deleteSession(id []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Delete(id) })
}

// dropExpiredSessions removes the sessions that expired before now.
func (s *store) dropExpiredSessions(now time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var ss session
			if json.Unmarshal(v, &ss) != nil || !now.Before(ss.Expires) {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
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
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVisors).Put(pk[:], data) })
}

func (s *store) deleteVisor(pk cipher.PubKey) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVisors).Delete(pk[:]) })
}

func (s *store) visors() (map[cipher.PubKey]seenVisor, error) {
	out := map[cipher.PubKey]seenVisor{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVisors).ForEach(func(k, v []byte) error {
			var pk cipher.PubKey
			var sv seenVisor
			if len(k) != len(pk) || json.Unmarshal(v, &sv) != nil {
				return nil // not ours; skip it
			}
			copy(pk[:], k)
			out[pk] = sv
			return nil
		})
	})
	return out, err
}

// setLabel stores pk's label ("" removes it).
func (s *store) setLabel(pk cipher.PubKey, label string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if label == "" {
			return tx.Bucket(bucketLabels).Delete(pk[:])
		}
		return tx.Bucket(bucketLabels).Put(pk[:], []byte(label))
	})
}

func (s *store) labels() (map[cipher.PubKey]string, error) {
	out := map[cipher.PubKey]string{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLabels).ForEach(func(k, v []byte) error {
			var pk cipher.PubKey
			if len(k) == len(pk) {
				copy(pk[:], k)
				out[pk] = string(v)
			}
			return nil
		})
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

// addAudit appends e (numbering it) and drops the oldest entries past
// maxAudit.
func (s *store) addAudit(e *AuditEntry) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		data, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(seq), data); err != nil {
			return err
		}
		if seq > maxAudit {
			c := b.Cursor()
			for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq-maxAudit; k, _ = c.Next() {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// audit returns up to n entries older than before (0: the newest), newest
// first.
func (s *store) audit(before uint64, n int) ([]AuditEntry, error) {
	out := []AuditEntry{}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			k, v = c.Seek(seqKey(before))
			if k == nil {
				k, v = c.Last()
			}
			for k != nil && binary.BigEndian.Uint64(k) >= before {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(out) < n; k, v = c.Prev() {
			var e AuditEntry
			if json.Unmarshal(v, &e) == nil {
				out = append(out, e)
			}
		}
		return nil
	})
	return out, err
}

func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, seq)
}
