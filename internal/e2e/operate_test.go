//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// The short verbs of `skywire cli visor` as a user runs them, --rpc given
// at any level, and an unknown command refused with the valid ones.
func TestVisorVerbs(t *testing.T) {
	n := startNetwork(t)
	a := newVisor(t, shortDir(t), "a", n)
	a.start(t)
	if r := sw(t, "skywire", "cli", "visor", "pk", "--rpc", a.sock); r.code != 0 || strings.TrimSpace(r.stdout) != a.pk {
		t.Fatalf("visor pk: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	// --rpc before the group, and in the middle.
	for _, args := range [][]string{{"cli", "--rpc", a.sock, "visor", "ver"}, {"cli", "visor", "--rpc", a.sock, "ver"}} {
		if r := sw(t, "skywire", args...); r.code != 0 || strings.TrimSpace(r.stdout) == "" {
			t.Fatalf("%v: exit %d %q %s", args, r.code, r.stdout, r.stderr)
		}
	}
	r := sw(t, "skywire", "cli", "visor", "ports", "--json", "--rpc", a.sock)
	var ports []struct{ What, Address string }
	if err := json.Unmarshal([]byte(r.stdout), &ports); err != nil || r.code != 0 {
		t.Fatalf("visor ports: exit %d %q %v", r.code, r.stdout, err)
	}
	seen := map[string]string{}
	for _, p := range ports {
		seen[p.What] = p.Address
	}
	if seen["stcp transports"] != a.stcpAddr || seen["admin API (cli_addr)"] != a.sock || !strings.HasPrefix(seen["app skychat"], "127.0.0.1:") {
		t.Fatalf("visor ports: %v", seen)
	}
	if r := sw(t, "skywire", "cli", "visor", "tp", "type", "--rpc", a.sock); r.code != 0 || !strings.HasPrefix(r.stdout, "stcp\n") {
		t.Fatalf("visor tp type: exit %d %q", r.code, r.stdout)
	}
	if r := sw(t, "skywire", "cli", "visor", "frobnicate", "--rpc", a.sock); r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) || !strings.Contains(r.stderr, "ping") {
		t.Fatalf("an unknown command: exit %d %q", r.code, r.stderr)
	}
	if r := sw(t, "skywire", "cli", "visor", "halt", "--rpc", a.sock); r.code != 0 {
		t.Fatalf("visor halt: exit %d %s", r.code, r.stderr)
	}
	select {
	case <-a.proc.done:
		if a.proc.err != nil {
			t.Fatalf("the halted visor exited with %v", a.proc.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the visor did not stop after halt")
	}
}

// A passcode set for skysocks reaches the app in its environment: its
// command line (what `ps` shows) and the visor's log never hold it.
func TestPasscodeNotInArgv(t *testing.T) {
	n := startNetwork(t)
	a := newVisor(t, shortDir(t), "a", n)
	a.start(t)
	const secret = "correct-horse-battery"
	if r := sw(t, "skywire", "cli", "visor", "app", "passcode", "skysocks", secret, "--rpc", a.sock); r.code != 0 {
		t.Fatalf("app passcode: %s", r.stderr)
	}
	var pid int
	until(t, "skysocks running again", func() bool {
		r := sw(t, "skywire", "cli", "visor", "app", "ls", "--json", "--rpc", a.sock)
		var apps []struct {
			Name  string `json:"name"`
			State string `json:"state"`
			PID   int    `json:"pid"`
		}
		json.Unmarshal([]byte(r.stdout), &apps)
		for _, ap := range apps {
			if ap.Name == "skysocks" && ap.State == "running" && ap.PID > 0 {
				pid = ap.PID
				return true
			}
		}
		return false
	})
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cmdline, []byte(secret)) {
		t.Fatalf("skysocks's command line holds the passcode: %q", cmdline)
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(environ, []byte("SKYWIRE_PASSCODE="+secret)) {
		t.Fatal("skysocks's environment does not carry the passcode")
	}
	if r := sw(t, "skywire", "cli", "visor", "log", "-n", "1000", "--rpc", a.sock); strings.Contains(r.stdout, secret) {
		t.Fatal("the visor's log holds the passcode")
	}
	if r := sw(t, "skywire", "cli", "visor", "app", "ls", "--json", "--rpc", a.sock); strings.Contains(r.stdout, secret) {
		t.Fatal("app ls shows the passcode")
	}
}
