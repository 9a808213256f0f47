package e2e

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rssMiB reads a process's resident set size.
func rssMiB(tb testing.TB, pid int) float64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return float64(kb) / 1024
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// BenchmarkVisorProcess measures real visor processes: start until the
// admin API answers, start until a persistent transport is up, and the RSS
// of a visor holding four idle transports (one of each type).
func BenchmarkVisorProcess(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads /proc")
	}
	n := startNetwork(b)
	dir := shortDir(b)
	a, c := newVisor(b, dir, "a", n), newVisor(b, dir, "c", n)
	c.start(b)
	a.edit(b, func(cfg map[string]any) {
		cfg["stcp"].(map[string]any)["pk_table"] = map[string]any{c.pk: c.stcpAddr}
		cfg["transport"].(map[string]any)["persistent"] = []any{map[string]any{"pk": c.pk, "type": "stcp"}}
	})

	began := time.Now()
	a.proc = start(b, "skywire", "visor", "run", "-c", a.cfg)
	waitInfo(b, a.proc, "--rpc", a.sock)
	answers := time.Since(began)
	for len(a.lsTP(b)) == 0 {
		time.Sleep(2 * time.Millisecond)
	}
	persistentUp := time.Since(began)

	for _, typ := range []string{"stcpr", "sudph", "dmsg"} {
		deadline := time.Now().Add(30 * time.Second)
		for sw(b, "skywire", "cli", "add-tp", c.pk, "--type", typ, "--rpc", a.sock).code != 0 {
			if time.Now().After(deadline) {
				b.Fatalf("add-tp %s never worked", typ)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got := len(a.lsTP(b)); got != 4 {
		b.Fatalf("%d transports, want 4", got)
	}
	time.Sleep(3 * time.Second) // idle: keepalives only
	rss := rssMiB(b, a.proc.cmd.Process.Pid)
	for b.Loop() {
	}
	b.ReportMetric(float64(answers.Microseconds())/1000, "ms-to-admin-api")
	b.ReportMetric(float64(persistentUp.Microseconds())/1000, "ms-to-persistent-tp")
	b.ReportMetric(rss, "MiB-RSS-4-idle-tps")
	a.proc.stop(b)
	c.proc.stop(b)
	n.proc.stop(b)
}
