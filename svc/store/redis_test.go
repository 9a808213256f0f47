package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/redistest"
)

func openRedis(t *testing.T, url string) *RedisDB {
	t.Helper()
	d, err := OpenRedis(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestRedis(t *testing.T) {
	url := redistest.Start(t)
	r, err := openRedis(t, url).Store("svc", 100)
	if err != nil {
		t.Fatal(err)
	}
	// Redis's own clock expires entries: real time, short TTLs.
	testStore(t, r, 150*time.Millisecond, time.Sleep)
}

// Several instances of a service on one Redis are one store: writers on
// separate connections never lose an update, and what one wrote the other
// reads. Networks (prefixes) and services (namespaces) stay apart.
func TestRedisSharedByInstances(t *testing.T) {
	url := redistest.Start(t)
	var stores []Store
	for range 3 {
		s, _ := openRedis(t, url+"?prefix=net1").Store("tpd", 1000)
		stores = append(stores, s)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for i, s := range stores {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					if err := Update(ctx, s, "counter", 0, func(old []byte) ([]byte, error) { return append(old, byte('a'+i)), nil }); err != nil {
						t.Error(err)
					}
				}
			}()
		}
	}
	wg.Wait()
	if v, err := stores[2].Get(ctx, "counter"); err != nil || len(v) != 300 {
		t.Fatalf("3 instances × 4 writers × 25 updates: %d (%v)", len(v), err)
	}
	other, _ := openRedis(t, url+"?prefix=net2").Store("tpd", 1000)
	sibling, _ := openRedis(t, url+"?prefix=net1").Store("ar", 1000)
	for _, s := range []Store{other, sibling} {
		if _, err := s.Get(ctx, "counter"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another network or service sees the key: %v", err)
		}
	}
}

// A password never comes from the command line.
func TestRedisPasswordNotInURL(t *testing.T) {
	_, err := OpenRedis(context.Background(), "redis://user:secret@127.0.0.1:1/0")
	if err == nil || strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), EnvRedisPassword) {
		t.Fatalf("err = %v", err)
	}
}

// A Redis that wants a password gets it from $SKYWIRE_REDIS_PASSWORD or the
// file $SKYWIRE_REDIS_PASSWORD_FILE names; without it the error says so.
func TestRedisPasswordFromTheEnvironment(t *testing.T) {
	url := redistest.Start(t, "--requirepass", "s3cret pass")
	if _, err := OpenRedis(context.Background(), url); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("no password: %v", err)
	}
	t.Setenv(EnvRedisPassword, "s3cret pass")
	d, err := OpenRedis(context.Background(), url)
	if err != nil {
		t.Fatalf("password from $%s: %v", EnvRedisPassword, err)
	}
	d.Close()
	t.Setenv(EnvRedisPassword, "")
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("s3cret pass\n"), 0o600)
	t.Setenv(EnvRedisPasswordFile, file)
	d, err = OpenRedis(context.Background(), url)
	if err != nil {
		t.Fatalf("password from $%s: %v", EnvRedisPasswordFile, err)
	}
	s, _ := d.Store("svc", 10)
	if err := s.Swap(context.Background(), "k", nil, []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	d.Close()
}

// First, from instances on separate connections at once, is true for one
// caller only; the key expires by its TTL and is neither listed nor counted.
func TestRedisFirst(t *testing.T) {
	url := redistest.Start(t)
	a, err := openRedis(t, url).Store("svc", 1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openRedis(t, url).Store("svc", 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 32 {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			first, err := s.First(ctx, "nonce/x", 200*time.Millisecond)
			if err != nil {
				t.Error(err)
			}
			if first {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d callers saw the key first, want 1", wins)
	}
	if err := a.Swap(ctx, "entry", nil, []byte("v"), 0); err != nil {
		t.Fatalf("a remembered key took the only entry's place: %v", err)
	}
	listed := 0
	a.Scan(ctx, "", func(string, []byte) bool { listed++; return true })
	if listed != 1 {
		t.Fatalf("Scan lists %d keys, want the entry alone", listed)
	}
	time.Sleep(300 * time.Millisecond)
	if first, err := b.First(ctx, "nonce/x", time.Second); err != nil || !first {
		t.Fatalf("after its TTL the key is still remembered: %v %v", first, err)
	}
}

// rediss://: a Redis that speaks TLS with a certificate from a private CA is
// used with ?ca=, passes the conformance suite, and without it is refused
// with a message that says what to add.
func TestRedisTLS(t *testing.T) {
	url, ca := redistest.StartTLS(t)
	if _, err := OpenRedis(context.Background(), url); err == nil || !strings.Contains(err.Error(), "?ca=") {
		t.Fatalf("a private CA's certificate without ?ca=: %v", err)
	}
	if _, err := OpenRedis(context.Background(), strings.Replace(url, "rediss://", "redis://", 1)+"?ca="+ca); err == nil || !strings.Contains(err.Error(), "for rediss://") {
		t.Fatalf("?ca= on plain redis://: %v", err)
	}
	r, err := openRedis(t, url+"?ca="+ca+"&prefix=tls").Store("svc", 100)
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, r, 150*time.Millisecond, time.Sleep)
}
