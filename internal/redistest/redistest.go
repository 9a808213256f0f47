// Package redistest runs the real redis-server (Debian's package) for
// tests: on a free loopback port, in a temporary directory, stopped when
// the test ends. Only tests import it.
package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Start runs a redis-server and returns its redis:// URL once it answers.
// A machine without redis-server skips the test, except under CI (which
// installs it), where that fails. args are more redis-server arguments
// ("--requirepass", "secret").
func Start(t testing.TB, args ...string) string {
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
	argv := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"}, args...)
	cmd := exec.Command(bin, argv...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(time.Second))
			c.Write([]byte("PING\r\n"))
			buf := make([]byte, 7)
			n, _ := c.Read(buf)
			c.Close()
			if r := string(buf[:n]); r == "+PONG\r\n" || strings.HasPrefix(r, "-NOAUTH") { // up (a password is wanted)
				return fmt.Sprintf("redis://%s/0", addr)
			}
		}
		select {
		case <-done:
			t.Fatalf("redis-server exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server never answered on %s:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
