//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// Under systemd (Type=notify, WatchdogSec=): the visor says READY=1 once it
// serves, WATCHDOG=1 at half the interval while its admin API answers, and
// STOPPING=1 on SIGTERM; received here on the socket systemd would hold.
func TestSystemdNotify(t *testing.T) {
	n := startNetwork(t)
	dir := shortDir(t)
	a := newVisor(t, dir, "a", n)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	a.proc = startCmdEnv(t, []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=400000"}, filepath.Join(binDir, "skywire"), "visor", "run", "-c", a.cfg)
	next := func() string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 256)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	if got := next(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// Ready means served: the admin API answers at once.
	if r := sw(t, "skywire", "cli", "visor", "pk", "--rpc", a.sock); r.code != 0 {
		t.Fatalf("after READY=1 the admin API does not answer: %s", r.stderr)
	}
	for range 3 {
		if got := next(); got != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", got)
		}
	}
	a.proc.cmd.Process.Signal(syscall.SIGTERM)
	for {
		if got := next(); got == "STOPPING=1" {
			break
		} else if got != "WATCHDOG=1" {
			t.Fatalf("notification %q while stopping", got)
		}
	}
	<-a.proc.done
}

// `cli status` shows the visor on one screen (and all of it with --json);
// `cli doctor` passes on a healthy visor, and fails, naming the check and
// the fix, with a service down and with an app's port taken by another
// process.
func TestStatusAndDoctor(t *testing.T) {
	n := startNetwork(t)
	dir := shortDir(t)
	a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
	a.start(t)
	b.start(t)
	until(t, "a dmsg transport a → b", func() bool {
		return sw(t, "skywire", "cli", "add-tp", b.pk, "--type", "dmsg", "--label", "bob's pi", "--rpc", a.sock).code == 0
	})
	r := sw(t, "skywire", "cli", "status", "--rpc", a.sock)
	for _, want := range []string{"visor " + a.pk, "dmsg: 1 session", "transport_discovery", "transports (1)", "dmsg", "(bob's pi)", "skychat", "running"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("status lacks %q: exit %d\n%s%s", want, r.code, r.stdout, r.stderr)
		}
	}
	r = sw(t, "skywire", "cli", "status", "--json", "--rpc", a.sock)
	var st struct {
		Services []struct {
			Name string  `json:"name"`
			OK   bool    `json:"ok"`
			Off  float64 `json:"clock_offset_s"`
		} `json:"services"`
		Transports   []json.RawMessage            `json:"transports"`
		Reachability []struct{ Type, NAT string } `json:"reachability"`
		PID          int                          `json:"pid"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Services) != 5 || len(st.Transports) != 1 || st.PID != a.proc.cmd.Process.Pid {
		t.Fatalf("status --json: %v %+v", err, st)
	}
	for _, s := range st.Services {
		if !s.OK || s.Off > 2 || s.Off < -2 {
			t.Fatalf("service %+v", s)
		}
	}

	doctor := func(v *visorNode) (result, []struct{ Check, Result, Detail, Fix string }) {
		t.Helper()
		r := sw(t, "skywire", "cli", "doctor", "--json", "--rpc", v.sock)
		var checks []struct{ Check, Result, Detail, Fix string }
		if err := json.Unmarshal([]byte(r.stdout), &checks); err != nil {
			t.Fatalf("doctor --json printed %q (%s): %v", r.stdout, r.stderr, err)
		}
		return r, checks
	}
	r, checks := doctor(a)
	if r.code != 0 {
		t.Fatalf("doctor on a healthy visor: exit %d: %+v", r.code, checks)
	}
	seen := map[string]bool{}
	for _, c := range checks {
		seen[strings.Fields(c.Check)[0]] = true
	}
	for _, want := range []string{"visor", "config", "service", "clock", "dmsg", "stcpr", "port", "route"} {
		if !seen[want] {
			t.Errorf("doctor ran no %q check: %+v", want, checks)
		}
	}
	loop := false
	for _, c := range checks {
		loop = loop || strings.HasPrefix(c.Check, "route to itself via "+b.pk[:8]) && c.Result == "pass"
	}
	if !loop {
		t.Errorf("doctor did not set up a route to the visor itself through b: %+v", checks)
	}

	// c: the service discovery is down, and skychat's port is taken.
	c := newVisor(t, dir, "c", n)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	c.edit(t, func(cfg map[string]any) {
		cfg["service_discovery"] = "http://" + freePort(t)
		for _, app := range cfg["apps"].([]any) {
			if app.(map[string]any)["app"] == "skychat" {
				app.(map[string]any)["args"] = []any{"--addr", taken.Addr().String()}
			}
		}
	})
	c.start(t)
	r, checks = doctor(c)
	if r.code != 1 {
		t.Fatalf("doctor with a service down and a port taken: exit %d", r.code)
	}
	var sdDown, portTaken bool
	for _, ch := range checks {
		if ch.Result != "fail" {
			continue
		}
		sdDown = sdDown || ch.Check == "service service_discovery" && ch.Fix != ""
		portTaken = portTaken || strings.HasPrefix(ch.Check, "port "+taken.Addr().String()) && strings.Contains(ch.Detail, fmt.Sprintf("pid %d", os.Getpid())) && ch.Fix != ""
	}
	if !sdDown || !portTaken {
		t.Fatalf("doctor did not name the service down (%v) or the port's holder (%v): %+v", sdDown, portTaken, checks)
	}
}

// SIGHUP applies a changed config while a transfer runs over a route: the
// log level, an app's arguments (it restarts), stcp.pk_table and min hops
// change, the transfer ends byte-exact, and the transport stays the same
// one. A config that is not valid is refused with its reasons (by `cli visor
// reload` and by SIGHUP) and the running one kept.
func TestReload(t *testing.T) {
	n := startNetwork(t)
	dir := shortDir(t)
	a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
	a.proc = start(t, "skywire", "visor", "run", "-c", a.cfg) // the config's level (info), not a flag's
	waitInfo(t, a.proc, "--rpc", a.sock)
	b.start(t)
	until(t, "a dmsg transport a → b", func() bool {
		return sw(t, "skywire", "cli", "add-tp", b.pk, "--type", "dmsg", "--rpc", a.sock).code == 0
	})
	before := a.lsTP(t)
	const size int64 = 2 << 30
	bench := make(chan result, 1)
	go func() {
		bench <- sw(t, "skywire", "cli", "visor", "bench", b.pk, "--bytes", fmt.Sprint(size), "--json", "--timeout", "2m", "--rpc", a.sock)
	}()
	time.Sleep(300 * time.Millisecond) // the transfer under way
	peer, _ := cipherKey(t)
	a.edit(t, func(cfg map[string]any) {
		cfg["log_level"] = "debug"
		cfg["stcp"].(map[string]any)["pk_table"] = map[string]any{peer: "127.0.0.1:9"}
		cfg["routing"].(map[string]any)["min_hops"] = 1
		for _, app := range cfg["apps"].([]any) {
			if app.(map[string]any)["app"] == "skysocks" {
				app.(map[string]any)["args"] = []any{"--allow-local"}
			}
		}
	})
	if err := a.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	until(t, "the reload logged", func() bool { return strings.Contains(a.proc.stderr.String(), "config reloaded") })
	select {
	case r := <-bench:
		t.Fatalf("the transfer ended before the reload did (exit %d %s): it must run across it", r.code, r.stderr)
	default:
	}
	logged := a.proc.stderr.String()
	for _, want := range []string{"log_level info → debug", "app skysocks restarted", "stcp.pk_table: 1 peers", "routing.min_hops 0 → 1"} {
		if !strings.Contains(logged, want) {
			t.Errorf("the reload did not apply %q:\n%s", want, logged)
		}
	}
	r := <-bench
	var res struct{ Bytes int64 }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Bytes != size {
		t.Fatalf("the transfer across the reload: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	if after := a.lsTP(t); len(after) != 1 || after[0].ID != before[0].ID {
		t.Fatalf("the transport changed across the reload: %+v → %+v", before, after)
	}
	until(t, "debug lines after the reload", func() bool {
		sw(t, "skywire", "cli", "visor", "app", "start", "no-such-app", "--rpc", a.sock) // a failing call logs at debug
		return strings.Contains(a.proc.stderr.String()[len(logged):], "DEBUG")
	})
	r = sw(t, "skywire", "cli", "visor", "app", "ls", "--json", "--rpc", a.sock)
	if !strings.Contains(r.stdout, `"--allow-local"`) {
		t.Fatalf("skysocks does not run with its new arguments: %s", r.stdout)
	}

	// A broken config: refused with the reasons, the running one kept.
	a.edit(t, func(cfg map[string]any) { cfg["dmsg"].(map[string]any)["sessions_count"] = 0 })
	r = sw(t, "skywire", "cli", "visor", "reload", "--rpc", a.sock)
	if r.code != 1 || !strings.Contains(r.stderr, "dmsg.sessions_count") || !strings.Contains(r.stderr, "running one kept") {
		t.Fatalf("reload of a broken config: exit %d %s", r.code, r.stderr)
	}
	a.proc.cmd.Process.Signal(syscall.SIGHUP)
	until(t, "SIGHUP with a broken config refused", func() bool { return strings.Contains(a.proc.stderr.String(), "config reload refused") })
	if r := sw(t, "skywire", "cli", "visor", "ping", b.pk, "-c", "1", "--rpc", a.sock); r.code != 0 {
		t.Fatalf("the visor after a refused reload: %s", r.stderr)
	}
}

// cipherKey is a fresh key pair's public key (hex).
func cipherKey(t *testing.T) (string, string) {
	r := sw(t, "skywire", "cli", "config", "gen-keys", "--json")
	var k struct{ PK, SK string }
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil {
		t.Fatal(err)
	}
	return k.PK, k.SK
}

// `app start` of an app that exits at once fails with its reason and last
// output; `proxy start` saves auto start (the proxy comes back after a
// restart) and `proxy stop` clears it.
func TestAppStartAndProxyAutoStart(t *testing.T) {
	n := startNetwork(t)
	dir := shortDir(t)
	a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	a.edit(t, func(cfg map[string]any) {
		for _, app := range cfg["apps"].([]any) {
			if app.(map[string]any)["app"] == "skychat" {
				app.(map[string]any)["auto_start"] = false
				app.(map[string]any)["args"] = []any{"--addr", taken.Addr().String()}
			}
		}
	})
	a.start(t)
	b.start(t)
	r := sw(t, "skywire", "cli", "visor", "app", "start", "skychat", "--rpc", a.sock)
	if r.code == 0 || !strings.Contains(r.stderr, "exited at once") || !strings.Contains(r.stderr, "address already in use") {
		t.Fatalf("starting skychat on a taken port: exit %d %q", r.code, r.stderr)
	}

	autoStart := func() bool {
		r := sw(t, "skywire", "cli", "visor", "app", "ls", "--json", "--rpc", a.sock)
		var apps []struct {
			Name      string `json:"name"`
			AutoStart bool   `json:"auto_start"`
		}
		json.Unmarshal([]byte(r.stdout), &apps)
		for _, ap := range apps {
			if ap.Name == "skysocks-client" {
				return ap.AutoStart
			}
		}
		t.Fatalf("no skysocks-client in %s", r.stdout)
		return false
	}
	if r := sw(t, "skywire", "cli", "proxy", "start", b.pk, "--addr", freePort(t), "--rpc", a.sock); r.code != 0 {
		t.Fatalf("proxy start: %s", r.stderr)
	}
	if !autoStart() {
		t.Fatal("proxy start did not set auto start: the proxy would not survive a restart")
	}
	if r := sw(t, "skywire", "cli", "proxy", "stop", "--rpc", a.sock); r.code != 0 {
		t.Fatalf("proxy stop: %s", r.stderr)
	}
	if autoStart() {
		t.Fatal("proxy stop left auto start on")
	}
}
