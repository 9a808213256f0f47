package hypervisor

import (
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/redistest"
)

// A database in the layout of earlier builds (a bucket per kind) keeps its
// password, visors, labels and audit log when a newer hypervisor opens it;
// the old buckets are gone after, and the audit log numbers on.
func TestStoreMovesTheOldLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hypervisor.db")
	pk, _ := cipher.GenerateKeyPair()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen, _ := json.Marshal(seenVisor{FirstSeen: time.Unix(100, 0).UTC(), LastSeen: time.Unix(200, 0).UTC(), Version: "v1"})
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket([]byte("auth"))
		b.Put([]byte("password"), []byte("$argon2id$old-hash"))
		b, _ = tx.CreateBucket([]byte("visors"))
		b.Put(pk[:], seen)
		b, _ = tx.CreateBucket([]byte("labels"))
		b.Put(pk[:], []byte("the pi"))
		b, _ = tx.CreateBucket([]byte("sessions"))
		b.Put([]byte("x"), []byte("{}"))
		b, _ = tx.CreateBucket([]byte("audit"))
		for seq := uint64(1); seq <= 3; seq++ {
			e, _ := json.Marshal(AuditEntry{Seq: seq, Action: "login"})
			b.Put(binary.BigEndian.AppendUint64(nil, seq), e)
		}
		return nil
	})
	db.Close()

	st, err := openStore("bbolt:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := st.passwordHash(); h != "$argon2id$old-hash" {
		t.Fatalf("password hash %q", h)
	}
	if ls, _ := st.labels(); ls[pk] != "the pi" {
		t.Fatalf("labels %v", ls)
	}
	if vs, _ := st.visors(); vs[pk].Version != "v1" {
		t.Fatalf("visors %v", vs)
	}
	st.addAudit(&AuditEntry{Action: "after"})
	es, _ := st.audit(0, 10)
	if len(es) != 4 || es[0].Seq != 4 || es[0].Action != "after" || es[3].Seq != 1 {
		t.Fatalf("audit %+v", es)
	}
	if es, _ := st.audit(3, 10); len(es) != 2 || es[0].Seq != 2 {
		t.Fatalf("audit before 3: %+v", es)
	}
	st.Close()

	// Opened again: the same, and the old buckets are gone.
	st, err = openStore("bbolt:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := st.passwordHash(); h != "$argon2id$old-hash" {
		t.Fatalf("password hash after reopening %q", h)
	}
	st.Close()
	db, _ = bolt.Open(path, 0o600, nil)
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		for _, b := range oldBuckets {
			if tx.Bucket([]byte(b)) != nil {
				t.Errorf("old bucket %s is still there", b)
			}
		}
		return nil
	})
}

// The audit log keeps its last maxAudit entries.
func TestAuditIsBounded(t *testing.T) {
	st, err := openStore("memory")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for range maxAudit + 5 {
		if err := st.addAudit(&AuditEntry{Action: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := st.audit(0, maxAudit+10)
	if len(es) != maxAudit || es[0].Seq != maxAudit+5 || es[len(es)-1].Seq != 6 {
		t.Fatalf("%d entries, newest %d, oldest %d", len(es), es[0].Seq, es[len(es)-1].Seq)
	}
}

// On a Redis, two hypervisors share one database: the password, labels and
// one numbering of the audit log.
func TestStoreSharedOnRedis(t *testing.T) {
	url := redistest.Start(t) + "?prefix=hv"
	a, err := openStore(url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := openStore(url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pk, _ := cipher.GenerateKeyPair()
	a.setPasswordHash("$argon2id$shared")
	a.setLabel(pk, "lab")
	var wg sync.WaitGroup
	for _, s := range []*store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := s.addAudit(&AuditEntry{Action: "x"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if h, _ := b.passwordHash(); h != "$argon2id$shared" {
		t.Fatalf("b's password hash %q", h)
	}
	if ls, _ := b.labels(); ls[pk] != "lab" {
		t.Fatalf("b's labels %v", ls)
	}
	es, _ := b.audit(0, 100)
	seqs := map[uint64]bool{}
	for _, e := range es {
		seqs[e.Seq] = true
	}
	if len(es) != 40 || len(seqs) != 40 || es[0].Seq != 40 {
		t.Fatalf("%d audit entries, %d distinct numbers, newest %d", len(es), len(seqs), es[0].Seq)
	}
}
