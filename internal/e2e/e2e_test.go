// Package e2e runs the built skywire executable as separate processes, the
// way a user does: configs from gen-config, control through `skywire cli`.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/testtool"
)

var binDir string // holds skywire and links to it under role program names

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "swe2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		root, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "go env GOMOD:", err)
			return 1
		}
		// Built as `make build` builds it: what users run.
		build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, "skywire"), ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building skywire: %v\n%s", err, out)
			return 1
		}
		if err := os.Symlink("skywire", filepath.Join(dir, "skywire-visor")); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// freeAppAddrs moves the apps of the visor config at path that listen on a
// fixed local port (skychat's 8001, skysocks-client's 1080) to free ones:
// the machine running the tests may run a visor of its own.
func freeAppAddrs(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	apps, _ := cfg["apps"].([]any)
	for _, a := range apps {
		args, _ := a.(map[string]any)["args"].([]any)
		for i := range args {
			if args[i] == "--addr" && i+1 < len(args) {
				args[i+1] = freePort(t)
			}
		}
	}
	out, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// result is a finished command.
type result struct {
	code           int
	stdout, stderr string
}

// sw runs `skywire args…` (or another program name in binDir) to completion.
func sw(t testing.TB, prog string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, prog), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", prog, args, err)
	}
	return r
}

// process is a long-running skywire started by the test.
type process struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, set before done closes
}

func start(t testing.TB, prog string, args ...string) *process {
	t.Helper()
	return startCmd(t, filepath.Join(binDir, prog), args...)
}

// startCmd starts any command (`ip netns exec … skywire …`) as a process.
func startCmd(t testing.TB, name string, args ...string) *process {
	t.Helper()
	return startCmdEnv(t, nil, name, args...)
}

// startCmdEnv is startCmd with more environment variables ("NAME=value").
func startCmdEnv(t testing.TB, env []string, name string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	prog := filepath.Base(name)
	p := &process{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			if t.Failed() { // it ended early: what it said may be why
				t.Logf("%s (exited: %v) output:\n%s", prog, p.err, p.stderr.String())
			}
		default:
			cmd.Process.Kill() // only our own child, by its PID
			<-p.done
			t.Logf("%s output:\n%s", prog, p.stderr.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit (failing after a generous bound:
// a hang, not a speed measurement).
func (p *process) stop(t testing.TB) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			return ee.ExitCode()
		}
		if p.err != nil {
			t.Fatal(p.err)
		}
		return 0
	case <-time.After(15 * time.Second):
		t.Fatalf("process did not exit after SIGTERM; output:\n%s", p.stderr.String())
		return -1
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shortDir is a temporary directory short enough for unix socket paths.
func shortDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "swv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

type info struct {
	PK         string  `json:"pk"`
	Version    string  `json:"version"`
	ConfigPath string  `json:"config_path"`
	LocalPath  string  `json:"local_path"`
	Uptime     float64 `json:"uptime_seconds"`
}

// waitInfo polls `skywire cli visor info --json` until the visor answers.
func waitInfo(t testing.TB, p *process, args ...string) info {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := sw(t, "skywire", append([]string{"cli", "visor", "info", "--json"}, args...)...)
		if r.code == 0 {
			var i info
			if err := json.Unmarshal([]byte(r.stdout), &i); err != nil {
				t.Fatalf("info --json printed %q: %v", r.stdout, err)
			}
			return i
		}
		select {
		case <-p.done:
			t.Fatalf("visor exited (%v):\n%s", p.err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("visor never answered: %s\nvisor output:\n%s", r.stderr, p.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func configPK(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		PK string `json:"pk"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.PK
}

func digest(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestTwoVisorsAsProcesses(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM is not deliverable on Windows")
	}
	dir := shortDir(t)
	type node struct {
		name, cfg, sock string
		proc            *process
		sum             [32]byte
	}
	nodes := []*node{{name: "a"}, {name: "b"}}
	for i, n := range nodes {
		os.Mkdir(filepath.Join(dir, n.name), 0o755)
		n.cfg = filepath.Join(dir, n.name, "skywire-config.json")
		n.sock = filepath.Join(dir, n.name+".sock")
		// One through `skywire visor`, one through `skywire cli visor`: the same command.
		gen := []string{"visor", "gen-config"}
		if i == 1 {
			gen = []string{"cli", "visor", "gen-config"}
		}
		r := sw(t, "skywire", append(gen, "-o", n.cfg, "-t", "--cli-addr", n.sock, "--stcp-addr", "127.0.0.1:0")...)
		if r.code != 0 {
			t.Fatalf("gen-config: exit %d: %s", r.code, r.stderr)
		}
		if fi, err := os.Stat(n.cfg); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("config %s: %v mode %v", n.cfg, err, fi.Mode().Perm())
		}
		freeAppAddrs(t, n.cfg)
		n.sum = digest(t, n.cfg)
	}
	// As in the Skywire README: `skywire visor run -c FILE` and `skywire-visor FILE`.
	nodes[0].proc = start(t, "skywire", "visor", "run", "-c", nodes[0].cfg)
	nodes[1].proc = start(t, "skywire-visor", nodes[1].cfg, "--log-format", "json")

	for _, n := range nodes {
		i := waitInfo(t, n.proc, "--rpc", n.sock)
		if i.PK != configPK(t, n.cfg) {
			t.Fatalf("visor %s reports pk %s, config has %s", n.name, i.PK, configPK(t, n.cfg))
		}
		if i.ConfigPath != n.cfg || i.LocalPath != filepath.Join(dir, n.name, "local") || i.Version == "" || i.Uptime < 0 {
			t.Fatalf("visor %s info: %+v", n.name, i)
		}
		if fi, err := os.Stat(n.sock); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("admin socket %s: %v mode %v", n.sock, err, fi.Mode().Perm())
		}
	}
	if configPK(t, nodes[0].cfg) == configPK(t, nodes[1].cfg) {
		t.Fatal("the two configs have the same key")
	}
	// Text output names the key too.
	r := sw(t, "skywire", "cli", "visor", "info", "--rpc", nodes[0].sock)
	if r.code != 0 || !strings.Contains(r.stdout, configPK(t, nodes[0].cfg)) {
		t.Fatalf("info text: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// The JSON log format is JSON, one object per line.
	for _, line := range strings.Split(strings.TrimSpace(nodes[1].proc.stderr.String()), "\n") {
		if !json.Valid([]byte(line)) {
			t.Fatalf("--log-format json wrote a non-JSON line: %q", line)
		}
	}

	for _, n := range nodes {
		if code := n.proc.stop(t); code != 0 {
			t.Fatalf("visor %s exited %d after SIGTERM:\n%s", n.name, code, n.proc.stderr.String())
		}
		if digest(t, n.cfg) != n.sum {
			t.Fatalf("visor %s changed its config file", n.name)
		}
		if _, err := os.Stat(n.sock); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("visor %s left its socket behind: %v", n.name, err)
		}
		if !strings.Contains(n.proc.stderr.String(), "visor stopped") {
			t.Fatalf("visor %s did not log its stop:\n%s", n.name, n.proc.stderr.String())
		}
		r := sw(t, "skywire", "cli", "visor", "info", "--rpc", n.sock)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot reach the visor") {
			t.Fatalf("info after stop: exit %d: %s", r.code, r.stderr)
		}
	}
}

func freePort(t testing.TB) string { t.Helper(); return testtool.FreeAddr(t) }

func TestTCPAdminNeedsToken(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM is not deliverable on Windows")
	}
	dir := shortDir(t)
	cfg := filepath.Join(dir, "skywire-config.json")
	addr := freePort(t)
	if r := sw(t, "skywire", "visor", "gen-config", "-o", cfg, "--cli-addr", addr, "--stcp-addr", "127.0.0.1:0"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	freeAppAddrs(t, cfg)
	p := start(t, "skywire", "visor", "run", "-c", cfg, "--log-level", "debug")
	tokenFile := filepath.Join(dir, "local", "cli-token")
	i := waitInfo(t, p, "--rpc", addr, "--token-file", tokenFile)
	if i.PK != configPK(t, cfg) {
		t.Fatalf("pk %s", i.PK)
	}
	r := sw(t, "skywire", "cli", "visor", "info", "--rpc", addr)
	if r.code != 1 || !strings.Contains(r.stderr, "token") {
		t.Fatalf("no token: exit %d: %s", r.code, r.stderr)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestDispatchExitCodes(t *testing.T) {
	r := sw(t, "skywire", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "skysocks-client") {
		t.Fatalf("--help: %d %s", r.code, r.stdout)
	}
	r = sw(t, "skywire", "nonsense")
	if r.code != 2 || !strings.Contains(r.stderr, "valid roles: visor, cli") {
		t.Fatalf("unknown role: %d %s", r.code, r.stderr)
	}
	r = sw(t, "skywire", "cli", "visor", "info", "--no-such-flag")
	if r.code != 2 {
		t.Fatalf("unknown flag: %d %s", r.code, r.stderr)
	}
	r = sw(t, "skywire-visor", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "gen-config") {
		t.Fatalf("skywire-visor --help: %d %s", r.code, r.stdout)
	}
}
