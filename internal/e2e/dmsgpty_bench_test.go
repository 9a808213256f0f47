//go:build linux

package e2e

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// BenchmarkRemoteShell measures the remote shell as a user meets it, with
// visor processes on one dmsg server: the throughput of
// `cli dmsgpty exec B -- head -c 256M /dev/zero` run on A, as a ratio to
// the same command read from a local pipe in the same run; and the round
// trip of one keystroke through `cli dmsgpty start B` (typed into a pty,
// echoed by B's terminal), beside the same keystroke on a local shell's
// pty.
func BenchmarkRemoteShell(b *testing.B) {
	vs := ptyVisors(b, 2, nil)
	a, bv := vs[0], vs[1]
	if r := sw(b, "skywire", "cli", "dmsgpty", "whitelist", "add", a.pk, "--rpc", bv.sock); r.code != 0 {
		b.Fatalf("whitelist add: %s", r.stderr)
	}
	until(b, "A reaches B's shell", func() bool {
		return sw(b, "skywire", "cli", "dmsgpty", "exec", bv.pk, "--rpc", a.sock, "--", "true").code == 0
	})
	const size = 256 << 20
	read := func(name string, args ...string) float64 {
		b.Helper()
		cmd := exec.Command(name, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil || n != size {
			b.Fatalf("%s: %d bytes, %v", name, n, err)
		}
		return float64(size) / time.Since(began).Seconds() / 1e6
	}
	var remote, local []float64
	for range max(b.N, 3) {
		remote = append(remote, read(filepath.Join(binDir, "skywire"), "cli", "dmsgpty", "exec", bv.pk, "--rpc", a.sock, "--", "head", "-c", "268435456", "/dev/zero"))
		local = append(local, read("head", "-c", "268435456", "/dev/zero"))
	}
	rm, lm := median(remote), median(local)
	b.ReportMetric(rm, "MB/s-remote")
	b.ReportMetric(lm, "MB/s-local-pipe")
	b.ReportMetric(rm/lm, "ratio")

	// Keystroke round trips.
	echo := func(cmd *exec.Cmd, ready string) time.Duration {
		b.Helper()
		cmd.Env = append(os.Environ(), "TERM=dumb", "PS1=$ ")
		pf, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
		if err != nil {
			b.Fatal(err)
		}
		f := pollablePty(b, pf) // so that read deadlines work
		defer func() { cmd.Process.Kill(); cmd.Wait(); f.Close() }()
		buf := make([]byte, 4096)
		var seen strings.Builder
		f.SetReadDeadline(time.Now().Add(20 * time.Second))
		f.WriteString("echo " + ready + "\r")
		for !strings.Contains(seen.String(), ready+"\r\n") {
			n, err := f.Read(buf)
			if err != nil {
				b.Fatalf("waiting for the shell: %v (%q)", err, seen.String())
			}
			seen.Write(buf[:n])
		}
		time.Sleep(200 * time.Millisecond)
		f.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		for { // what is left of the prompt
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
		var rtts []time.Duration
		for i := range 200 {
			k := []byte{byte('a' + i%26)}
			f.SetReadDeadline(time.Now().Add(10 * time.Second))
			began := time.Now()
			f.Write(k)
			got := 0
			for got == 0 {
				n, err := f.Read(buf)
				if err != nil {
					b.Fatalf("keystroke %d: %v", i, err)
				}
				got += n
			}
			rtts = append(rtts, time.Since(began))
			if i%60 == 59 {
				f.Write([]byte{21}) // ^U: a fresh line now and then
				f.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				for {
					if _, err := f.Read(buf); err != nil {
						break
					}
				}
			}
		}
		slices.Sort(rtts)
		return rtts[len(rtts)/2]
	}
	remoteRTT := echo(exec.Command(filepath.Join(binDir, "skywire"), "cli", "dmsgpty", "start", bv.pk, "--rpc", a.sock), "rdy1")
	localRTT := echo(exec.Command("/bin/sh"), "rdy2")
	b.ReportMetric(float64(remoteRTT.Microseconds())/1000, "ms-keystroke-remote")
	b.ReportMetric(float64(localRTT.Microseconds())/1000, "ms-keystroke-local")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// pollablePty is the pty master f in Go's poller (creack/pty leaves it
// blocking, where read deadlines do nothing); f is closed.
func pollablePty(tb testing.TB, f *os.File) *os.File {
	tb.Helper()
	sc, err := f.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	fd := -1
	sc.Control(func(raw uintptr) { fd, err = unix.Dup(int(raw)) })
	f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		tb.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx")
}
