//go:build linux

package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/redistest"
	"github.com/skyfleet/skywire/internal/testtool"
)

// startNginx runs Debian's nginx as the load balancer of docs/services.md:
// for each front address ("127.0.0.1:PORT"), an upstream of the backends'
// base URLs, round robin, retrying the next backend when one does not take
// the connection. It skips outside CI where nginx is missing.
func startNginx(t *testing.T, fronts map[string][]string) {
	t.Helper()
	bin := testtool.Need(t, "nginx")
	dir := t.TempDir()
	var conf strings.Builder
	// One process (no master and workers): the test's Kill ends all of it.
	fmt.Fprintf(&conf, "daemon off;\nmaster_process off;\npid %s/nginx.pid;\nerror_log stderr warn;\nevents { worker_connections 1024; }\nhttp {\n  access_log off;\n", dir)
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&conf, "  %s_temp_path %s/%s;\n", p, dir, p)
	}
	i := 0
	for front, backends := range fronts {
		fmt.Fprintf(&conf, "  upstream u%d {\n", i)
		for _, b := range backends {
			fmt.Fprintf(&conf, "    server %s max_fails=1 fail_timeout=10s;\n", strings.TrimPrefix(b, "http://"))
		}
		fmt.Fprintf(&conf, "    keepalive 32;\n  }\n  server {\n    listen %s;\n    location / {\n      proxy_pass http://u%d;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_next_upstream error timeout;\n    }\n  }\n", front, i)
		i++
	}
	conf.WriteString("}\n")
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", path, "-e", "stderr").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, conf.String())
	}
	p := startCmd(t, bin, "-p", dir, "-c", path, "-e", "stderr")
	for front := range fronts {
		waitHTTP(t, p, "http://"+front+"/health")
	}
}

// serversListed is how many dmsg servers the dmsg discovery at url lists.
func serversListed(url string) int { return listed(url + "/v1/servers") }

// The deployment of docs/services.md, on one machine: three dmsg
// discoveries and three transport discoveries on one Redis behind nginx,
// two dmsg servers, and visors that know only the balancer. Visor a uses
// only the first dmsg server and c only the second, so b's transports to
// them are streams through both; a route a → b → c carries traffic while
// an instance of each discovery is killed, and afterwards a new visor
// registers and is reached through the survivors. Every instance answers
// for what was registered at any other.
func TestScaleOutBehindNginx(t *testing.T) {
	redis := redistest.Start(t) + "?prefix=lb"
	dir := t.TempDir()
	keys := make([]string, 2) // the dmsg servers' key files
	pks := make([]string, 2)
	for i := range keys {
		pk, sk := cipher.GenerateKeyPair()
		keys[i], pks[i] = filepath.Join(dir, fmt.Sprintf("dmsg%d.key", i)), pk.Hex()
		if err := os.WriteFile(keys[i], []byte(sk.Hex()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	trusted := pks[0] + "," + pks[1]
	n := startNetworkWith(t, "--store", redis, "--sk-file", keys[0], "--trusted-servers", trusted)

	ports := freePorts(t, 7)
	url := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", ports[i]) }
	dds, tpds := []string{n.dmsgDisc, url(0), url(1)}, []string{n.tpDisc, url(2), url(3)}
	procs := map[string]*process{}
	instance := func(u string, args ...string) {
		args = append(args, "--addr", strings.TrimPrefix(u, "http://"), "--store", redis)
		procs[u] = start(t, "skywire", args...)
		waitHTTP(t, procs[u], u+"/health")
	}
	for _, u := range dds[1:] {
		instance(u, "svc", "dmsg-discovery", "--trusted-servers", trusted)
	}
	for _, u := range tpds[1:] {
		instance(u, "svc", "transport-discovery")
	}
	ddLB, tpdLB := url(4), url(5)
	startNginx(t, map[string][]string{strings.TrimPrefix(ddLB, "http://"): dds, strings.TrimPrefix(tpdLB, "http://"): tpds})

	second := start(t, "skywire", "svc", "dmsg-server", "--addr", strings.TrimPrefix(url(6), "http://"), "--discovery", ddLB, "--sk-file", keys[1])
	until(t, "both dmsg servers listed at every instance", func() bool {
		for _, u := range dds {
			if serversListed(u) != 2 {
				return false
			}
		}
		return true
	})

	vdir := shortDir(t)
	behindLB := func(name string, only string) *visorNode {
		v := newVisor(t, vdir, name, n)
		v.edit(t, func(cfg map[string]any) {
			d := cfg["dmsg"].(map[string]any)
			d["discovery"] = ddLB
			if only != "" {
				d["trusted_servers"] = []string{only}
			}
			cfg["transport"].(map[string]any)["discovery"] = tpdLB
		})
		v.start(t)
		return v
	}
	a, b, c := behindLB("a", pks[0]), behindLB("b", ""), behindLB("c", pks[1])
	for _, peer := range []*visorNode{a, c} {
		until(t, "b reaches "+peer.name+" over dmsg", func() bool {
			return sw(t, "skywire", "cli", "add-tp", peer.pk, "--type", "dmsg", "--rpc", b.sock).code == 0
		})
	}
	until(t, "every transport discovery instance lists b's two transports", func() bool {
		for _, u := range tpds {
			if transportsOf(u, b.pk) != 2 {
				return false
			}
		}
		return true
	})
	if r := sw(t, "skywire", "cli", "visor", "ping", c.pk, "-c", "2", "--rpc", a.sock); r.code != 0 {
		t.Fatalf("a route a → b → c: %s", r.stderr)
	}

	// An instance of each discovery dies (SIGKILL) while the route carries
	// a transfer.
	bench := make(chan result, 1)
	go func() {
		bench <- sw(t, "skywire", "cli", "visor", "bench", c.pk, "--bytes", "16777216", "--rpc", a.sock)
	}()
	for _, u := range []string{dds[1], tpds[1]} {
		procs[u].cmd.Process.Kill()
		<-procs[u].done
	}
	if r := <-bench; r.code != 0 {
		t.Fatalf("the transfer while instances died: %s", r.stderr)
	}
	d := behindLB("d", pks[0]) // a reaches only visors on the first server
	until(t, "a reaches the new visor d through the surviving instances", func() bool {
		return sw(t, "skywire", "cli", "add-tp", d.pk, "--type", "dmsg", "--rpc", a.sock).code == 0
	})
	until(t, "d's transport listed by the survivors", func() bool {
		return transportsOf(tpds[0], d.pk) == 1 && transportsOf(tpds[2], d.pk) == 1 && transportsOf(tpdLB, d.pk) == 1
	})
	// (The route finder sees the new transport at its next refresh.)
	until(t, "a route c → b → a → d after the instances died", func() bool {
		return sw(t, "skywire", "cli", "visor", "ping", d.pk, "-c", "2", "--rpc", c.sock).code == 0
	})
	// The killed instance comes back and knows everyone.
	instance(dds[1], "svc", "dmsg-discovery", "--trusted-servers", trusted)
	for _, v := range []*visorNode{a, b, c, d} {
		resp, err := http.Get(dds[1] + "/v1/entries/" + v.pk)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("the restarted dmsg discovery answers %d for %s", resp.StatusCode, v.name)
		}
	}
	if serversListed(dds[1]) != 2 {
		t.Fatalf("the restarted dmsg discovery lists %d servers, want 2", serversListed(dds[1]))
	}
	select {
	case <-second.done:
		t.Fatalf("the second dmsg server exited: %s", second.stderr.String())
	default:
	}
}
