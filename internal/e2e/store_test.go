package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"
)

// `svc all --store bbolt:FILE` keeps what visors registered across a
// restart: with both visors killed (so that nobody registers again), the
// restarted services still know their dmsg entries and their transport.
func TestServicesKeepEntriesAcrossRestart(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM is not deliverable on Windows")
	}
	db := filepath.Join(t.TempDir(), "services.db")
	n := startNetworkWith(t, "--store", "bbolt:"+db)
	dir := shortDir(t)
	a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
	a.start(t)
	b.start(t)
	until(t, "a dmsg transport a → b", func() bool {
		return sw(t, "skywire", "cli", "add-tp", b.pk, "--type", "dmsg", "--rpc", a.sock).code == 0
	})
	transports := func() int {
		resp, err := http.Get(n.tpDisc + "/v1/transports?edge=" + a.pk)
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var list []json.RawMessage
		json.NewDecoder(resp.Body).Decode(&list)
		return len(list)
	}
	until(t, "the transport registered", func() bool { return transports() == 1 })

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
	if got := transports(); got != 1 {
		t.Fatalf("after the restart the transport discovery lists %d transports of a, want 1", got)
	}
}
