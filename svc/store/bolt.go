package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A bbolt file holds one bucket per namespace (a service), each entry
// stored as expires(8, Unix ns, 0: never) ‖ value, and a "_counts" bucket
// with each namespace's number of entries (expired ones included until the
// collector removes them), so that the bound is checked without a walk.
// Every Swap runs in a bbolt read-write transaction (concurrent ones
// batched into one), which bbolt runs one at a time and syncs before it
// returns: compare-and-swap is atomic, and a write that returned is on
// disk whatever happens next.

var countsBucket = []byte("_counts")

// Bolt collector timing.
const (
	boltGCEvery   = 30 * time.Second
	boltGCBatch   = 1000 // entries deleted per transaction
	boltScanBatch = 256
)

// BoltDB is an open bbolt file; Store gives one namespace of it.
type BoltDB struct {
	db   *bolt.DB
	path string
	now  func() time.Time

	mu     sync.Mutex // guards stores
	stores []*Bolt

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// OpenBolt opens (or makes, mode 0600) the bbolt file at path and starts its
// collector of expired entries. Only one process may have it open.
func OpenBolt(path string) (*BoltDB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("store %s: another process has it open (one process per file; use Redis to share a store)", path)
		}
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(countsBucket)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	// A batch waits at most this long for company: writers that come
	// together share an fsync; one alone barely waits.
	db.MaxBatchDelay = 500 * time.Microsecond
	d := &BoltDB{db: db, path: path, now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	go d.collect()
	return d, nil
}

// Store returns namespace name of the file as a Store holding at most max
// entries.
func (d *BoltDB) Store(name string, max int) (*Bolt, error) {
	if name == "" || name == string(countsBucket) {
		return nil, fmt.Errorf("store %s: bad namespace %q", d.path, name)
	}
	if err := d.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(name))
		return err
	}); err != nil {
		return nil, fmt.Errorf("store %s: %w", d.path, err)
	}
	b := &Bolt{d: d, bucket: []byte(name), max: max}
	d.mu.Lock()
	d.stores = append(d.stores, b)
	d.mu.Unlock()
	return b, nil
}

// Close stops the collector and closes the file. It is idempotent.
func (d *BoltDB) Close() error {
	var err error
	d.once.Do(func() {
		close(d.stop)
		<-d.done
		err = d.db.Close()
	})
	return err
}

// collect removes expired entries every boltGCEvery until Close.
func (d *BoltDB) collect() {
	defer close(d.done)
	t := time.NewTicker(boltGCEvery)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.mu.Lock()
			stores := append([]*Bolt(nil), d.stores...)
			d.mu.Unlock()
			for _, b := range stores {
				b.collect()
			}
		}
	}
}

// Bolt is one namespace of a BoltDB.
type Bolt struct {
	d      *BoltDB
	bucket []byte
	max    int
}

func boltExpiry(raw []byte) (time.Time, []byte, bool) {
	if len(raw) < 8 {
		return time.Time{}, nil, false
	}
	ns := int64(binary.BigEndian.Uint64(raw))
	var t time.Time
	if ns != 0 {
		t = time.Unix(0, ns)
	}
	return t, raw[8:], true
}

func (b *Bolt) live(raw []byte, now time.Time) ([]byte, bool) {
	exp, v, ok := boltExpiry(raw)
	if !ok || !exp.IsZero() && !now.Before(exp) {
		return nil, false
	}
	return v, true
}

// Get implements Store.
func (b *Bolt) Get(_ context.Context, key string) ([]byte, error) {
	var out []byte
	err := b.d.db.View(func(tx *bolt.Tx) error {
		v, ok := b.live(tx.Bucket(b.bucket).Get([]byte(key)), b.d.now())
		if !ok {
			return ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

func (b *Bolt) addCount(tx *bolt.Tx, delta int64) int64 {
	c := tx.Bucket(countsBucket)
	var n int64
	if raw := c.Get(b.bucket); len(raw) == 8 {
		n = int64(binary.BigEndian.Uint64(raw))
	}
	if delta != 0 {
		n += delta
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], uint64(n))
		c.Put(b.bucket, buf[:])
	}
	return n
}

// Swap implements Store.
func (b *Bolt) Swap(_ context.Context, key string, old, new []byte, ttl time.Duration) error {
	if err := checkEntry(key, new); err != nil {
		return err
	}
	// Batch: concurrent swaps share one transaction and one fsync (each
	// still answers only once it is on disk); a swap that fails is run
	// again alone, so its error is its own.
	return b.d.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.bucket)
		now := b.d.now()
		raw := bk.Get([]byte(key))
		cur, ok := b.live(raw, now)
		switch {
		case old == nil && ok, old != nil && (!ok || !bytes.Equal(cur, old)):
			return ErrConflict
		}
		present := raw != nil // counted, live or not
		if new == nil {
			if present {
				b.addCount(tx, -1)
				return bk.Delete([]byte(key))
			}
			return nil
		}
		if !present {
			if b.addCount(tx, 0) >= int64(b.max) {
				return ErrFull
			}
			b.addCount(tx, 1)
		}
		val := make([]byte, 8+len(new))
		if ttl > 0 {
			binary.BigEndian.PutUint64(val, uint64(now.Add(ttl).UnixNano()))
		}
		copy(val[8:], new)
		return bk.Put([]byte(key), val)
	})
}

// Delete implements Store.
func (b *Bolt) Delete(_ context.Context, key string) error {
	return b.d.db.Batch(func(tx *bolt.Tx) error {
		bk := tx.Bucket(b.bucket)
		if bk.Get([]byte(key)) == nil {
			return nil
		}
		b.addCount(tx, -1)
		return bk.Delete([]byte(key))
	})
}

// Scan implements Store, in key order. Entries are read in batches, each
// in its own read transaction, so fn never holds one open.
func (b *Bolt) Scan(ctx context.Context, prefix string, fn func(key string, value []byte) bool) error {
	type kv struct {
		k string
		v []byte
	}
	from := []byte(prefix)
	skipFirst := false
	for {
		var batch []kv
		err := b.d.db.View(func(tx *bolt.Tx) error {
			now := b.d.now()
			c := tx.Bucket(b.bucket).Cursor()
			k, raw := c.Seek(from)
			if skipFirst && k != nil && bytes.Equal(k, from) {
				k, raw = c.Next()
			}
			for ; k != nil && strings.HasPrefix(string(k), prefix) && len(batch) < boltScanBatch; k, raw = c.Next() {
				if v, ok := b.live(raw, now); ok {
					batch = append(batch, kv{string(k), bytes.Clone(v)})
				}
				from = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range batch {
			if !fn(e.k, e.v) {
				return nil
			}
		}
		if len(batch) < boltScanBatch {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		skipFirst = true
	}
}

// collect deletes this namespace's expired entries, a batch per
// transaction.
func (b *Bolt) collect() {
	for {
		n := 0
		b.d.db.Update(func(tx *bolt.Tx) error {
			now := b.d.now()
			c := tx.Bucket(b.bucket).Cursor()
			for k, raw := c.First(); k != nil && n < boltGCBatch; k, raw = c.Next() {
				if _, ok := b.live(raw, now); !ok {
					if c.Delete() == nil {
						n++
					}
				}
			}
			b.addCount(tx, -int64(n))
			return nil
		})
		if n < boltGCBatch {
			return
		}
	}
}
