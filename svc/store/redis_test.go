package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startRedis runs the real redis-server (Debian's package) on a free
// loopback port with a temporary directory, stopped at cleanup, and returns
// its redis:// URL. Outside CI a machine without it skips.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("no redis-server: .ci/run installs it")
		}
		t.Skip("no redis-server here (apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		d, err := OpenRedis(ctx, url)
		cancel()
		if err == nil {
			d.Close()
			return url
		}
		select {
		case <-done:
			t.Fatalf("redis-server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server never answered: %v\n%s", err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

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
	url := startRedis(t)
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
	url := startRedis(t)
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
