package hostcfg

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Changes are undone newest first, after a "crash" too (a new Journal
// from the state file), files come back byte for byte (or go, if they
// did not exist), and a failed change leaves nothing to undo.
func TestRestoreAfterCrash(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	var ran [][]string
	run := func(args []string) error {
		ran = append(ran, args)
		if args[0] == "fail" {
			return errors.New("no")
		}
		return nil
	}
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 192.0.2.53\n"), 0o644)
	made := filepath.Join(dir, "new")

	j, _ := Open(state, run)
	if err := j.Do("route", []string{"add", "route"}, []string{"del", "route"}); err != nil {
		t.Fatal(err)
	}
	if err := j.Do("rule", []string{"fail"}, []string{"never"}); err == nil {
		t.Fatal("a failed change succeeded")
	}
	if err := j.WriteFile("dns", resolv, []byte("nameserver 10.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := j.WriteFile("new file", made, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.Do("firewall", []string{"add", "fw"}, []string{"del", "fw"}); err != nil {
		t.Fatal(err)
	}

	// The process dies here; a new one finds the state file.
	ran = nil
	j2, err := Open(state, run)
	if err != nil || !j2.Pending() {
		t.Fatalf("reopened: %v, pending %v", err, j2.Pending())
	}
	if err := j2.Restore(); err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"del", "fw"}, {"del", "route"}}; !slices.EqualFunc(ran, want, slices.Equal) {
		t.Fatalf("undone: %v, want %v", ran, want)
	}
	if b, _ := os.ReadFile(resolv); string(b) != "nameserver 192.0.2.53\n" {
		t.Fatalf("resolv.conf: %q", b)
	}
	if _, err := os.Stat(made); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a file that did not exist is left")
	}
	if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the state file is left")
	}
	os.WriteFile(state, []byte("{garbage"), 0o600)
	if _, err := Open(state, run); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("a damaged state file: %v", err)
	}
}
