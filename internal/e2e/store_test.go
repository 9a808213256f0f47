package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/skyfleet/skywire/internal/redistest"
)

// transportsOf is how many transports of pk the transport discovery at
// url lists (-1 if it does not answer).
func transportsOf(url, pk string) int {
	resp, err := http.Get(url + "/v1/transports?edge=" + pk)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var list []json.RawMessage
	if json.NewDecoder(resp.Body).Decode(&list) != nil {
		return -1
	}
	return len(list)
}

// `svc all --store bbolt:FILE` (or a Redis) keeps what visors registered
// across a restart: with both visors killed (so that nobody registers
// again), the restarted services still know their dmsg entries and their
// transport. On Redis a second transport discovery, another process on
// the same Redis, answers the same.
func TestServicesKeepEntriesAcrossRestart(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM is not deliverable on Windows")
	}
	for _, kind := range []string{"bbolt", "redis"} {
		t.Run(kind, func(t *testing.T) {
			spec := "bbolt:" + filepath.Join(t.TempDir(), "services.db")
			if kind == "redis" {
				spec = redistest.Start(t) + "?prefix=e2e"
			}
			n := startNetworkWith(t, "--store", spec)
			dir := shortDir(t)
			a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
			a.start(t)
			b.start(t)
			until(t, "a dmsg transport a → b", func() bool {
				return sw(t, "skywire", "cli", "add-tp", b.pk, "--type", "dmsg", "--rpc", a.sock).code == 0
			})
			until(t, "the transport registered", func() bool { return transportsOf(n.tpDisc, a.pk) == 1 })
			if kind == "redis" {
				addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
				second := start(t, "skywire", "svc", "transport-discovery", "--addr", addr, "--store", spec)
				waitHTTP(t, second, "http://"+addr+"/health")
				if got := transportsOf("http://"+addr, a.pk); got != 1 {
					t.Fatalf("a second transport discovery on the same Redis lists %d transports of a, want 1", got)
				}
			}

			for _, v := range []*visorNode{a, b} {
				v.proc.cmd.Process.Kill() // no goodbye: nothing is deregistered, nothing registers again
				<-v.proc.done
			}
			if code := n.proc.stop(t); code != 0 {
				t.Fatalf("svc all exited %d", code)
			}
			n.run(t)
			for _, v := range []*visorNode{a, b} {
				resp, err := http.Get(n.dmsgDisc + "/v1/entries/" + v.pk)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("after the restart the dmsg discovery answers %d for %s", resp.StatusCode, v.name)
				}
			}
			if got := transportsOf(n.tpDisc, a.pk); got != 1 {
				t.Fatalf("after the restart the transport discovery lists %d transports of a, want 1", got)
			}
		})
	}
}
