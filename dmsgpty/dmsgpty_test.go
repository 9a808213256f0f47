//go:build !windows

package dmsgpty

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfleet/skywire/cipher"
)

// hostPair serves h on one end of a real TCP connection and returns the
// other end.
func hostPair(t *testing.T, h *Host, peer Peer) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // after Accept: closing it first would reset the connection
	var wg sync.WaitGroup
	accepted := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		close(accepted)
		if err != nil {
			return
		}
		h.Serve(c, peer)
	}()
	t.Cleanup(wg.Wait)
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	<-accepted
	t.Cleanup(func() { c.Close() })
	return c
}

func newKey(t *testing.T) cipher.PubKey {
	t.Helper()
	pk, _ := cipher.GenerateKeyPair()
	return pk
}

func run(t *testing.T, h *Host, req Request, input string) (stdout, stderr string, code int, reason string) {
	t.Helper()
	s, err := Open(hostPair(t, h, Peer{PK: newKey(t), Via: "test"}), req)
	if err != nil {
		t.Fatal(err)
	}
	if input != "" {
		s.Write([]byte(input))
	}
	s.CloseInput()
	var out, errb bytes.Buffer
	code, reason, err = s.Copy(&out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code, reason
}

func TestExecOnPipes(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := NewHost(Config{})
	defer h.Close()
	out, errOut, code, _ := run(t, h, Request{Mode: ModeExec, Argv: []string{"sh", "-c", `echo out; echo err >&2; cat; exit 3`}}, "typed\n")
	if out != "out\ntyped\n" || errOut != "err\n" || code != 3 {
		t.Fatalf("stdout %q stderr %q code %d", out, errOut, code)
	}
	// Arguments reach the program as they are: no shell in between.
	out, _, code, _ = run(t, h, Request{Mode: ModeExec, Argv: []string{"printf", "%s|", "a b", "$HOME", "'"}}, "")
	if out != "a b|$HOME|'|" || code != 0 {
		t.Fatalf("printf printed %q (code %d)", out, code)
	}
	// A program killed by a signal reports 128+n, as a shell would.
	_, _, code, _ = run(t, h, Request{Mode: ModeExec, Argv: []string{"sh", "-c", "kill -9 $$"}}, "")
	if code != 137 {
		t.Fatalf("killed by SIGKILL: code %d, want 137", code)
	}
}

func TestExecOutputIsExact(t *testing.T) {
	h := NewHost(Config{})
	defer h.Close()
	// 1 MiB of every byte value, through a pipe, arrives byte for byte.
	dir := t.TempDir()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	path := filepath.Join(dir, "blob")
	os.WriteFile(path, data, 0o600)
	out, _, code, _ := run(t, h, Request{Mode: ModeExec, Argv: []string{"cat", path}}, "")
	if code != 0 || sha256.Sum256([]byte(out)) != sha256.Sum256(data) {
		t.Fatalf("cat of 1 MiB: %d bytes, code %d, not the same bytes", len(out), code)
	}
}

func TestMissingProgramIsRefused(t *testing.T) {
	h := NewHost(Config{})
	defer h.Close()
	_, err := Open(hostPair(t, h, Peer{Via: "test"}), Request{Mode: ModeExec, Argv: []string{"no-such-program-here"}})
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "no-such-program-here") {
		t.Fatalf("err = %v", err)
	}
}

func TestShellOnAPty(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := NewHost(Config{Shell: "/bin/sh"})
	defer h.Close()
	s, err := Open(hostPair(t, h, Peer{Via: "test"}), Request{Mode: ModeShell, Rows: 30, Cols: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !s.Accepted.TTY || s.Accepted.Shell != "/bin/sh" {
		t.Fatalf("accepted %+v", s.Accepted)
	}
	var out safeBuffer
	done := make(chan int)
	go func() {
		code, _, _ := s.Copy(&out, &out)
		done <- code
	}()
	wait := func(what string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("never saw %q in:\n%s", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	s.Write([]byte("stty size; tty >/dev/null && echo on-a-tty\n"))
	wait("30 100")
	wait("on-a-tty")
	s.Resize(40, 132)
	s.Write([]byte("stty size\n"))
	wait("40 132")
	s.Write([]byte("exit 7\n"))
	if code := <-done; code != 7 {
		t.Fatalf("exit status %d, want 7", code)
	}
}

func TestLimitsAndIdle(t *testing.T) {
	h := NewHost(Config{MaxSessionsPerKey: 2, IdleTimeout: 300 * time.Millisecond})
	defer h.Close()
	pk := newKey(t)
	var open []*Session
	for range 2 {
		s, err := Open(hostPair(t, h, Peer{PK: pk, Via: "test"}), Request{Mode: ModeExec, Argv: []string{"sleep", "30"}})
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	// A third from the same key is refused; another key is served.
	_, err := Open(hostPair(t, h, Peer{PK: pk, Via: "test"}), Request{Mode: ModeExec, Argv: []string{"true"}})
	var re *RefusedError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "max_sessions") {
		t.Fatalf("third session: %v", err)
	}
	if _, _, code, _ := run(t, h, Request{Mode: ModeExec, Argv: []string{"true"}}, ""); code != 0 {
		t.Fatalf("another key: code %d", code)
	}
	// Both sleepers idle out, with the reason, and free their slots.
	for _, s := range open {
		code, reason, err := s.Copy(&bytes.Buffer{}, &bytes.Buffer{})
		if err != nil || !strings.Contains(reason, "idle") || code == 0 {
			t.Fatalf("idle session ended with %d %q %v", code, reason, err)
		}
	}
	if _, _, code, _ := run(t, h, Request{Mode: ModeExec, Argv: []string{"true"}}, ""); code != 0 {
		t.Fatalf("after the idle ones: code %d", code)
	}
}

// readPID waits for a pid written to path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pid int
		b, _ := os.ReadFile(path)
		if _, err := fmt.Sscan(string(b), &pid); err == nil {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The caller leaving ends the shell and the job running in the terminal's
// foreground (its own process group, under the shell's job control).
func TestCallerLeavingKillsTheProgram(t *testing.T) {
	h := NewHost(Config{Shell: "/bin/sh"})
	defer h.Close()
	dir := t.TempDir()
	shellMark, jobMark := filepath.Join(dir, "shell"), filepath.Join(dir, "job")
	s, err := Open(hostPair(t, h, Peer{Via: "test"}), Request{Mode: ModeShell})
	if err != nil {
		t.Fatal(err)
	}
	s.Write(fmt.Appendf(nil, "echo $$ > %s; sh -c 'echo $$ > %s; exec sleep 60'\n", shellMark, jobMark))
	shell, job := readPID(t, shellMark), readPID(t, jobMark)
	s.Close()
	deadline := time.Now().Add(20 * time.Second)
	for h.SessionCount() > 0 || processAlive(shell) || processAlive(job) {
		if time.Now().After(deadline) {
			t.Fatalf("shell %d alive %v, job %d alive %v, sessions %d after the caller left", shell, processAlive(shell), job, processAlive(job), h.SessionCount())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A background job that keeps the terminal open does not keep the session
// open once the shell has exited: its status arrives.
func TestBackgroundJobDoesNotHoldTheSession(t *testing.T) {
	h := NewHost(Config{Shell: "/bin/sh"})
	defer h.Close()
	mark := filepath.Join(t.TempDir(), "job")
	s, err := Open(hostPair(t, h, Peer{Via: "test"}), Request{Mode: ModeShell})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.Write(fmt.Appendf(nil, "sh -c 'echo $$ > %s; exec sleep 30' &\n", mark))
	job := readPID(t, mark)
	defer syscall.Kill(job, syscall.SIGKILL)
	s.Write([]byte("exit 4\n"))
	code, _, err := s.Copy(io.Discard, io.Discard)
	if err != nil || code != 4 {
		t.Fatalf("code %d, err %v", code, err)
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) is dead, waiting for its parent.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestRefuseAnswersWithTheReason(t *testing.T) {
	a, b := net.Pipe()
	go Refuse(b, "not whitelisted")
	_, err := Open(a, Request{Mode: ModeShell})
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != "not whitelisted" {
		t.Fatalf("err = %v", err)
	}
}

func TestHostCloseEndsSessions(t *testing.T) {
	h := NewHost(Config{})
	s, err := Open(hostPair(t, h, Peer{Via: "test"}), Request{Mode: ModeExec, Argv: []string{"sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	go h.Close()
	_, reason, err := s.Copy(&bytes.Buffer{}, &bytes.Buffer{})
	if err != nil || !strings.Contains(reason, "stopping") {
		t.Fatalf("reason %q err %v", reason, err)
	}
	if _, err := Open(hostPair(t, h, Peer{Via: "test"}), Request{Mode: ModeShell}); err == nil {
		t.Fatal("a closed host accepted a session")
	}
}

func FuzzFrames(f *testing.F) {
	f.Add([]byte{frameOpen, 0, 3, 1, '{', '}'})
	f.Add([]byte{frameExit, 0, 4, 0, 0, 0, 1})
	f.Add([]byte{frameResize, 0, 4, 0, 24, 0, 80})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := newFrameReader(bytes.NewReader(b))
		for {
			typ, p, err := fr.next()
			if err != nil {
				return
			}
			parseOpen(typ, p)
			parseExit(p)
			parseResize(p)
		}
	})
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A program that writes at once and exits (printf x) is answered with
// ACCEPT first, then its output: its output once came first and the caller
// took the session as broken ("frame 5 before ACCEPT", 2 in 400 runs).
// Many at once, as scripts run them.
func TestQuickProgramsAnswerAcceptFirst(t *testing.T) {
	defer goleak.VerifyNone(t)
	h := NewHost(Config{MaxSessions: 64})
	defer h.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				s, err := Open(hostPair(t, h, Peer{PK: newKey(t), Via: "test"}), Request{Mode: ModeExec, Argv: []string{"printf", "x"}})
				if err != nil {
					errs <- err
					continue
				}
				var out bytes.Buffer
				code, _, err := s.Copy(&out, io.Discard)
				s.Close()
				if err != nil || code != 0 || out.String() != "x" {
					errs <- fmt.Errorf("code %d, output %q: %v", code, out.String(), err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n <= 3 {
			t.Error(err)
		}
	}
	if n > 0 {
		t.Fatalf("%d of 400 sessions failed", n)
	}
}
