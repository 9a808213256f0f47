//go:build linux

package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ptyVisors starts the services and n visors with their dmsg sessions up;
// edit changes visor i's config before it starts.
func ptyVisors(t testing.TB, n int, edit func(i int, cfg map[string]any)) []*visorNode {
	t.Helper()
	return ptyVisorsOn(t, startNetwork(t), shortDir(t), n, edit)
}

func ptyVisorsOn(t testing.TB, nw *network, dir string, n int, edit func(i int, cfg map[string]any)) []*visorNode {
	t.Helper()
	vs := make([]*visorNode, n)
	for i := range vs {
		vs[i] = newVisor(t, dir, string(rune('a'+i)), nw)
		vs[i].edit(t, func(cfg map[string]any) {
			cfg["apps"] = []any{}
			if edit != nil {
				edit(i, cfg)
			}
		})
		vs[i].start(t)
	}
	return vs
}

// ptyAccess is `cli dmsgpty whitelist ls --json`.
type ptyAccess struct {
	Whitelist   []string `json:"whitelist"`
	Hypervisors bool     `json:"hypervisors"`
	Sessions    int      `json:"sessions"`
}

func (v *visorNode) ptyAccess(t testing.TB) ptyAccess {
	t.Helper()
	r := sw(t, "skywire", "cli", "dmsgpty", "whitelist", "ls", "--json", "--rpc", v.sock)
	var acc ptyAccess
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &acc) != nil {
		t.Fatalf("dmsgpty whitelist ls: %d %s %s", r.code, r.stdout, r.stderr)
	}
	return acc
}

// A remote shell between visor processes, as scripts use it: B whitelists
// A; `dmsgpty exec` from A returns the program's output and status
// faithfully (1 MiB byte for byte, stderr apart, non-zero codes), many at
// once; C, not whitelisted, is refused with the reason and nothing runs
// on B.
func TestRemoteShellExec(t *testing.T) {
	vs := ptyVisors(t, 3, func(i int, cfg map[string]any) {
		if i == 1 {
			cfg["dmsgpty"].(map[string]any)["max_sessions"] = 16
		}
	})
	a, b, c := vs[0], vs[1], vs[2]
	if r := sw(t, "skywire", "cli", "dmsgpty", "whitelist", "add", a.pk, "--rpc", b.sock); r.code != 0 {
		t.Fatalf("whitelist add: %s", r.stderr)
	}
	if acc := b.ptyAccess(t); len(acc.Whitelist) != 1 || acc.Whitelist[0] != a.pk {
		t.Fatalf("whitelist: %+v", acc)
	}
	// Saved in B's config.
	if cfg, _ := os.ReadFile(b.cfg); !strings.Contains(string(cfg), a.pk) {
		t.Fatalf("B's config does not list A:\n%s", cfg)
	}

	exec := func(from *visorNode, args ...string) result {
		return sw(t, "skywire", append([]string{"cli", "dmsgpty", "exec", b.pk, "--rpc", from.sock, "--"}, args...)...)
	}
	var r result
	until(t, "A runs echo on B", func() bool {
		r = exec(a, "echo", "hello", "world")
		return r.code == 0
	})
	if r.stdout != "hello world\n" {
		t.Fatalf("echo printed %q", r.stdout)
	}
	r = exec(a, "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.code != 3 || r.stdout != "out\n" || !strings.Contains(r.stderr, "err\n") {
		t.Fatalf("exit 3: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}

	// 1 MiB of random bytes arrives exactly.
	blob := filepath.Join(t.TempDir(), "blob")
	data := make([]byte, 1<<20)
	rand.Read(data)
	os.WriteFile(blob, data, 0o600)
	r = exec(a, "cat", blob)
	if r.code != 0 || len(r.stdout) != len(data) || sha256.Sum256([]byte(r.stdout)) != sha256.Sum256(data) {
		t.Fatalf("cat of 1 MiB: code %d, %d bytes, not the same bytes (stderr %q)", r.code, len(r.stdout), r.stderr)
	}

	// --json for scripts.
	r = sw(t, "skywire", "cli", "dmsgpty", "exec", b.pk, "--json", "--rpc", a.sock, "--", "sh", "-c", "printf x; exit 4")
	var js struct {
		Stdout   string `json:"stdout"`
		ExitCode int    `json:"exit_code"`
	}
	if json.Unmarshal([]byte(r.stdout), &js) != nil || js.Stdout != "x" || js.ExitCode != 4 || r.code != 4 {
		t.Fatalf("--json: code %d %q (stderr %q)", r.code, r.stdout, r.stderr)
	}

	// Sixteen at once, each with its own answer.
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := exec(a, "sh", "-c", fmt.Sprintf("sleep 0.2; echo n%d", i))
			if r.code != 0 || r.stdout != fmt.Sprintf("n%d\n", i) {
				errs <- fmt.Sprintf("exec %d: code %d stdout %q stderr %q", i, r.code, r.stdout, r.stderr)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	// C is not whitelisted: refused with the reason, and nothing runs.
	marker := filepath.Join(t.TempDir(), "ran")
	r = exec(c, "touch", marker)
	if r.code != 255 || !strings.Contains(r.stderr, "not in the dmsgpty.whitelist") || !strings.Contains(r.stderr, "whitelist add "+c.pk) {
		t.Fatalf("C: code %d stderr %q", r.code, r.stderr)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("C's command ran on B")
	}
	if !strings.Contains(b.proc.stderr.String(), "pty session refused") {
		t.Fatal("B's log does not record the refusal")
	}
	// Every session is in B's log, with who and how long.
	log := b.proc.stderr.String()
	if !strings.Contains(log, "pty session started") || !strings.Contains(log, "pty session ended") || !strings.Contains(log, a.pk) || !strings.Contains(log, `"duration"`) {
		t.Fatalf("B's log lacks the sessions:\n%s", log)
	}

	// Off the whitelist, A is refused too; sessions are all gone.
	if r := sw(t, "skywire", "cli", "dmsgpty", "whitelist", "rm", a.pk, "--rpc", b.sock); r.code != 0 {
		t.Fatalf("whitelist rm: %s", r.stderr)
	}
	if r = exec(a, "true"); r.code != 255 {
		t.Fatalf("A after rm: code %d", r.code)
	}
	until(t, "no session left on B", func() bool { return b.ptyAccess(t).Sessions == 0 })
}

// An interactive terminal, the client driven through a real pty: type a
// command and read its output, the window's size reaches the remote (and
// its changes), Ctrl-C interrupts the remote program, and `exit 5` ends
// the CLI with status 5.
func TestRemoteShellInteractive(t *testing.T) {
	vs := ptyVisors(t, 2, func(i int, cfg map[string]any) {
		if i == 1 {
			cfg["dmsgpty"].(map[string]any)["shell"] = "/bin/sh"
		}
	})
	a, b := vs[0], vs[1]
	if r := sw(t, "skywire", "cli", "dmsgpty", "whitelist", "add", a.pk, "--rpc", b.sock); r.code != 0 {
		t.Fatalf("whitelist add: %s", r.stderr)
	}
	until(t, "A reaches B's shell", func() bool {
		return sw(t, "skywire", "cli", "dmsgpty", "exec", b.pk, "--rpc", a.sock, "--", "true").code == 0
	})

	cmd := exec.Command(filepath.Join(binDir, "skywire"), "cli", "dmsgpty", "start", b.pk, "--rpc", a.sock)
	cmd.Env = append(os.Environ(), "TERM=xterm")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out syncBuffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})
	see := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("never saw %q; the terminal shows:\n%s", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	f.WriteString("echo $((6*7))zz\r")
	see("42zz")
	f.WriteString("stty size\r")
	see("30 100")
	// A new window size: the kernel tells the CLI (SIGWINCH), the CLI the visor.
	pty.Setsize(f, &pty.Winsize{Rows: 41, Cols: 132})
	time.Sleep(300 * time.Millisecond) // the resize travels beside the typing: let it land first
	f.WriteString("stty size\r")
	see("41 132")
	// Ctrl-C goes to the remote program, not to the CLI.
	f.WriteString("sleep 30; echo sl''ept\r") // the echo of the line never reads "slept"
	time.Sleep(300 * time.Millisecond)
	f.WriteString("\x03")
	f.WriteString("echo after-$((1+1))\r")
	see("after-2")
	if strings.Contains(out.String(), "slept") {
		t.Fatal("Ctrl-C did not interrupt the remote sleep")
	}
	f.WriteString("exit 5\r")
	select {
	case <-exited:
		ee, ok := waitErr.(*exec.ExitError)
		if !ok || ee.ExitCode() != 5 {
			t.Fatalf("the CLI ended with %v, want exit status 5\n%s", waitErr, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the CLI did not end after exit:\n%s", out.String())
	}
	until(t, "no session left on B", func() bool { return b.ptyAccess(t).Sessions == 0 })
}
