package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/redistest"
)

// transportsOf is how many transports of pk the transport discovery at
// url lists (-1 if it does not answer).
func transportsOf(url, pk string) int { return listed(url + "/v1/transports?edge=" + pk) }

// listed is the length of the JSON list url answers (-1 if it does not).
func listed(url string) int {
	resp, err := http.Get(url)
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

// Several instances of the discoveries on one Redis are one service: visor
// a registers at the first dmsg and transport discovery, b at second ones
// (other processes); a finds b through its own instances, sets up a
// transport and a route, and when b's instances are killed the route keeps
// carrying traffic and a's instances still answer for b.
func TestDiscoveriesScaleOutOnRedis(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("SIGTERM is not deliverable on Windows")
	}
	redis := redistest.Start(t) + "?prefix=scale"
	skFile := filepath.Join(t.TempDir(), "dmsg-server.key")
	n := startNetworkWith(t, "--store", redis, "--sk-file", skFile)
	sk, err := os.ReadFile(skFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := cipher.ParseSecKey(strings.TrimSpace(string(sk)))
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	dd2, tpd2 := fmt.Sprintf("http://127.0.0.1:%d", ports[0]), fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	dd2p := start(t, "skywire", "svc", "dmsg-discovery", "--addr", strings.TrimPrefix(dd2, "http://"), "--store", redis, "--trusted-servers", key.PubKey().Hex())
	tpd2p := start(t, "skywire", "svc", "transport-discovery", "--addr", strings.TrimPrefix(tpd2, "http://"), "--store", redis)
	waitHTTP(t, dd2p, dd2+"/health")
	waitHTTP(t, tpd2p, tpd2+"/health")

	dir := shortDir(t)
	a, b := newVisor(t, dir, "a", n), newVisor(t, dir, "b", n)
	b.edit(t, func(cfg map[string]any) {
		cfg["dmsg"].(map[string]any)["discovery"] = dd2
		cfg["transport"].(map[string]any)["discovery"] = tpd2
	})
	a.start(t)
	b.start(t)
	until(t, "a reaches b over dmsg (b registered at the other instance)", func() bool {
		return sw(t, "skywire", "cli", "add-tp", b.pk, "--type", "dmsg", "--rpc", a.sock).code == 0
	})
	until(t, "both instances list the transport", func() bool {
		return transportsOf(n.tpDisc, b.pk) == 1 && transportsOf(tpd2, a.pk) == 1
	})
	if r := sw(t, "skywire", "cli", "visor", "ping", b.pk, "-c", "2", "--rpc", a.sock); r.code != 0 {
		t.Fatalf("a route a → b: %s", r.stderr)
	}
	dd2p.stop(t)
	tpd2p.stop(t)
	if r := sw(t, "skywire", "cli", "visor", "bench", b.pk, "--bytes", "4194304", "--rpc", a.sock); r.code != 0 {
		t.Fatalf("the route after b's instances went: %s", r.stderr)
	}
	resp, err := http.Get(n.dmsgDisc + "/v1/entries/" + b.pk)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || transportsOf(n.tpDisc, b.pk) != 1 {
		t.Fatalf("a's instances no longer answer for b: %d, %d transports", resp.StatusCode, transportsOf(n.tpDisc, b.pk))
	}
}
