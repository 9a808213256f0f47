//go:build linux

package e2e

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// remotes is the keys v has transports to.
func remotes(t *testing.T, v *visorNode) []string {
	t.Helper()
	r := sw(t, "skywire", "cli", "ls-tp", "--json", "--rpc", v.sock)
	var tps []struct {
		RemotePK string `json:"remote_pk"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tps) != nil {
		t.Fatalf("ls-tp: %d %s %s", r.code, r.stdout, r.stderr)
	}
	var out []string
	for _, tp := range tps {
		out = append(out, tp.RemotePK)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// publicVisors is what the service discovery lists as public visors.
func publicVisors(t *testing.T, n *network) []string {
	t.Helper()
	resp, err := http.Get(n.svcDisc + "/v1/services?type=visor")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []struct {
		Entry struct {
			PK string `json:"pk"`
		} `json:"entry"`
	}
	json.NewDecoder(resp.Body).Decode(&list)
	var out []string
	for _, se := range list {
		out = append(out, se.Entry.PK)
	}
	slices.Sort(out)
	return out
}

// Three public visors list themselves; one with max_public_peers 1 refuses
// a second visor's transport; a new visor with autoconnect gets transports
// to autoconnect_count of them with no key typed, and when one it had dies
// it dials another.
func TestPublicVisorsAndAutoconnect(t *testing.T) {
	n := startNetwork(t) // service discovery entries live 4 s
	dir := shortDir(t)
	var pubs []*visorNode
	for i, name := range []string{"p1", "p2", "p3"} {
		v := newVisor(t, dir, name, n)
		v.edit(t, func(cfg map[string]any) {
			tp := cfg["transport"].(map[string]any)
			tp["public"] = true
			if i == 0 {
				tp["max_public_peers"] = 1
			}
		})
		v.start(t)
		pubs = append(pubs, v)
	}
	want := []string{pubs[0].pk, pubs[1].pk, pubs[2].pk}
	slices.Sort(want)
	until(t, "three public visors listed", func() bool { return slices.Equal(publicVisors(t, n), want) })

	// max_public_peers 1: the second visor to dial p1 is refused.
	x, y := newVisor(t, dir, "x", n), newVisor(t, dir, "y", n)
	x.start(t)
	y.start(t)
	if r := sw(t, "skywire", "cli", "add-tp", pubs[0].pk, "--type", "stcpr", "--rpc", x.sock); r.code != 0 {
		t.Fatalf("x to p1: %s", r.stderr)
	}
	if r := sw(t, "skywire", "cli", "add-tp", pubs[0].pk, "--type", "stcpr", "--rpc", y.sock); r.code == 0 || !strings.Contains(r.stderr, "too many transports") {
		t.Fatalf("y to a full p1: %d %s %s", r.code, r.stdout, r.stderr)
	}

	// Autoconnect to two: p1 is full, so p2 and p3.
	a := newVisor(t, dir, "a", n)
	a.edit(t, func(cfg map[string]any) {
		tp := cfg["transport"].(map[string]any)
		tp["public_autoconnect"] = true
		tp["autoconnect_count"] = 2
	})
	a.start(t)
	two := []string{pubs[1].pk, pubs[2].pk}
	slices.Sort(two)
	until(t, "transports to two public visors", func() bool { return slices.Equal(remotes(t, a), two) })

	// p2 dies and p1 has room again: a dials p1.
	pubs[1].proc.cmd.Process.Kill()
	<-pubs[1].proc.done
	if r := sw(t, "skywire", "cli", "rm-tp", remotesID(t, x, pubs[0].pk), "--rpc", x.sock); r.code != 0 {
		t.Fatalf("x's transport to p1: %s", r.stderr)
	}
	replaced := []string{pubs[0].pk, pubs[2].pk}
	slices.Sort(replaced)
	until(t, "p2 replaced by p1", func() bool { return slices.Equal(remotes(t, a), replaced) })
}

// remotesID is the id of v's transport to pk.
func remotesID(t *testing.T, v *visorNode, pk string) string {
	t.Helper()
	r := sw(t, "skywire", "cli", "ls-tp", "--json", "--rpc", v.sock)
	var tps []struct {
		ID       string `json:"id"`
		RemotePK string `json:"remote_pk"`
	}
	json.Unmarshal([]byte(r.stdout), &tps)
	for _, tp := range tps {
		if tp.RemotePK == pk {
			return tp.ID
		}
	}
	t.Fatalf("%s has no transport to %s: %s", v.name, pk, r.stdout)
	return ""
}
