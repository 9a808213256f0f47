package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// `cli visor events`, `cli visor log -f` and `cli visor app logs -f` follow
// a running visor: an app stopped and started shows in all three, and
// Ctrl-C (SIGINT) ends them cleanly.
func TestFollowLogsAndEvents(t *testing.T) {
	n := startNetwork(t)
	v := newVisor(t, shortDir(t), "v", n)
	v.start(t)
	until(t, "skysocks runs", func() bool {
		return strings.Contains(sw(t, "skywire", "cli", "visor", "app", "ls", "--rpc", v.sock).stdout, "running")
	})
	events := start(t, "skywire", "cli", "visor", "events", "--json", "--rpc", v.sock)
	visorLog := start(t, "skywire", "cli", "visor", "log", "-f", "-n", "0", "--rpc", v.sock)
	appLog := start(t, "skywire", "cli", "visor", "app", "logs", "skysocks", "-f", "-n", "0", "--rpc", v.sock)
	seen := func(p *process, what string) func() bool {
		return func() bool { return strings.Contains(p.stderr.String(), what) }
	}
	until(t, "the events begin with the state", seen(events, `"kind":"routes"`))
	if r := sw(t, "skywire", "cli", "visor", "app", "stop", "skysocks", "--rpc", v.sock); r.code != 0 {
		t.Fatal(r.stderr)
	}
	until(t, "an app event for the stop", seen(events, `"state":"stopped"`))
	until(t, "the visor's log line for the stop", seen(visorLog, "app stopped"))
	if r := sw(t, "skywire", "cli", "visor", "app", "start", "skysocks", "--rpc", v.sock); r.code != 0 {
		t.Fatal(r.stderr)
	}
	until(t, "the visor's log line for the start", seen(visorLog, "app started"))
	until(t, "the restarted app's output", func() bool { return strings.TrimSpace(appLog.stderr.String()) != "" })
	for _, p := range []*process{events, visorLog, appLog} {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
			if p.err != nil {
				t.Fatalf("%v after SIGINT: %v\n%s", p.cmd.Args, p.err, p.stderr.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%v did not end on SIGINT", p.cmd.Args)
		}
	}
	v.proc.stop(t)
	n.proc.stop(t)
}
