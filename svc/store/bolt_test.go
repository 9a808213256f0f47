package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

type boltTx = bolt.Tx

func openBolt(t *testing.T, path string) *BoltDB {
	t.Helper()
	d, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestBolt(t *testing.T) {
	now := time.Unix(1000, 0)
	d := openBolt(t, filepath.Join(t.TempDir(), "s.db"))
	d.now = func() time.Time { return now }
	b, err := d.Store("svc", 100)
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, b, time.Minute, func(dt time.Duration) { now = now.Add(dt) })
}

// The file is private, and holds what was written across a reopen;
// namespaces do not see each other.
func TestBoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	d := openBolt(t, path)
	a, _ := d.Store("a", 10)
	b, _ := d.Store("b", 10)
	ctx := context.Background()
	a.Swap(ctx, "k", nil, []byte("in a"), 0)
	if _, err := b.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b sees a's key: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	// One process at a time: a second open says why it cannot.
	if _, err := OpenBolt(path); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second open: %v", err)
	}
	d.Close()
	d = openBolt(t, path)
	a, _ = d.Store("a", 10)
	if v, err := a.Get(ctx, "k"); err != nil || string(v) != "in a" {
		t.Fatalf("after reopening: %q %v", v, err)
	}
}

// Expired entries leave the file (and the count) by themselves.
func TestBoltCollects(t *testing.T) {
	now := time.Unix(1000, 0)
	d := openBolt(t, filepath.Join(t.TempDir(), "s.db"))
	d.now = func() time.Time { return now }
	b, _ := d.Store("svc", 3000)
	ctx := context.Background()
	for i := range 2500 {
		if err := b.Swap(ctx, fmt.Sprintf("k%04d", i), nil, []byte("x"), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	b.Swap(ctx, "kept", nil, []byte("x"), 0)
	now = now.Add(time.Hour)
	b.collect()
	left := 0
	d.db.View(func(tx *boltTx) error {
		left = tx.Bucket(b.bucket).Stats().KeyN
		return nil
	})
	var count int64
	d.db.View(func(tx *boltTx) error { count = b.addCount(tx, 0); return nil })
	if left != 1 || count != 1 {
		t.Fatalf("after collecting: %d keys, count %d; want 1", left, count)
	}
}

// SIGKILL at any moment: the file always opens and holds every write that
// was acknowledged. A child process (this test binary) writes and reports
// each acknowledged write; it is killed at a random moment, again and
// again.
func TestBoltSurvivesSIGKILL(t *testing.T) {
	if path := os.Getenv("STORE_CRASH_WRITER"); path != "" {
		crashWriter(path)
		return
	}
	path := filepath.Join(t.TempDir(), "s.db")
	acked := map[string]string{}
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestBoltSurvivesSIGKILL$")
		cmd.Env = append(os.Environ(), "STORE_CRASH_WRITER="+path, fmt.Sprintf("STORE_CRASH_ROUND=%d", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		kill := time.After(time.Duration(50+rand.IntN(300)) * time.Millisecond)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if k, v, ok := strings.Cut(l, "="); ok {
					acked[k] = v
				}
			case <-kill:
				cmd.Process.Signal(syscall.SIGKILL)
				kill = nil
			}
		}
		cmd.Wait()
		d, err := OpenBolt(path)
		if err != nil {
			t.Fatalf("round %d: the file does not open after SIGKILL: %v", round, err)
		}
		b, err := d.Store("svc", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range acked {
			// The value found is the one acknowledged or a later one (a
			// write can land and the kill come before its report).
			got, err := b.Get(context.Background(), k)
			var want, have int
			fmt.Sscan(v, &want)
			if _, serr := fmt.Sscan(string(got), &have); err != nil || serr != nil || have < want {
				d.Close()
				t.Fatalf("round %d: acknowledged %s=%s, found %q (%v)", round, k, v, got, err)
			}
		}
		d.Close()
	}
	if len(acked) < 8 {
		t.Fatalf("only %d writes acknowledged in 8 rounds", len(acked))
	}
	t.Logf("%d acknowledged writes, all found after 8 SIGKILLs", len(acked))
}

// crashWriter writes until killed, printing "key=value" for each write
// Swap acknowledged (new keys, and updates of its own earlier ones).
func crashWriter(path string) {
	d, err := OpenBolt(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, _ := d.Store("svc", 1<<20)
	round := os.Getenv("STORE_CRASH_ROUND")
	ctx := context.Background()
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		k := fmt.Sprintf("r%s/%d", round, i%50)
		v := fmt.Sprintf("%d", i)
		err := Update(ctx, b, k, 0, func([]byte) ([]byte, error) { return []byte(v), nil })
		if err == nil {
			fmt.Fprintf(w, "%s=%s\n", k, v)
			w.Flush()
		}
	}
}
