//go:build unix

package admin

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The default socket lives in a directory of this user's.
func TestDefaultAddrIsPrivate(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	if got := DefaultAddr(); !strings.Contains(got, "skywire-") || filepath.Dir(filepath.Dir(got)) != filepath.Clean(os.TempDir()) {
		t.Fatalf("default without XDG_RUNTIME_DIR: %s", got)
	}
	dir := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", dir)
	if got := DefaultAddr(); got != filepath.Join(dir, "skywire", "cli.sock") {
		t.Fatalf("default with XDG_RUNTIME_DIR: %s", got)
	}
	ln, err := Listen(DefaultAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fi, err := os.Stat(filepath.Join(dir, "skywire")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory: %v %v", fi.Mode(), err)
	}
}

// Another user squatting the socket's directory or the socket itself: the
// visor refuses to listen there, and the CLI sends nothing to it.
func TestSquattedSocket(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to make files of another user")
	}
	const other = 65534 // nobody
	dir := filepath.Join(t.TempDir(), "skywire-x")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, other, other)
	if _, err := Listen(filepath.Join(dir, "cli.sock")); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("listen in another user's directory: %v", err)
	}

	// The squatter's socket: a live listener whose file another user owns.
	path := filepath.Join(t.TempDir(), "cli.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chown(path, other, other); err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			got <- struct{}{}
			c.Close()
		}
	}()
	c, err := NewClient(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = Call(context.Background(), c, opEcho, echoReq{Text: "passcode"})
	if !errors.Is(err, ErrNotOwned) {
		t.Fatalf("call to a squatted socket: %v", err)
	}
	select {
	case <-got:
		t.Fatal("the CLI connected to the squatter")
	default:
	}
}
