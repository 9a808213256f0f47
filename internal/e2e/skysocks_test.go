//go:build linux

package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// content is the test web server's payload: block repeated, cut to the
// requested length. The block's odd length makes a dropped or repeated
// chunk change the digest.
var block = func() []byte {
	b := make([]byte, 1<<20+7)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(b)
	return b
}()

type repeatReader struct{ off int }

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], block[r.off:])
		n += k
		r.off = (r.off + k) % len(block)
	}
	return n, nil
}

// contentDigest is the SHA-256 of the first n bytes of the content.
func contentDigest(n int64) [32]byte {
	h := sha256.New()
	io.CopyN(h, &repeatReader{}, n)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// webServer serves /bytes/<n>: n bytes of the content.
func webServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/bytes/"), 10, 64)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.CopyN(w, &repeatReader{}, n)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// download is a curl process fetching url through a SOCKS5 proxy; its
// output is hashed as it arrives.
type download struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *syncBuffer
	h      hash.Hash // of what was read so far
	got    int64
}

func startCurl(t testing.TB, socks, url string) *download {
	t.Helper()
	args := []string{"-sS", "--fail", "-o", "-", url}
	if socks != "" {
		args = append([]string{"--socks5-hostname", socks}, args...)
	}
	cmd := exec.Command("curl", args...)
	d := &download{cmd: cmd, stderr: &syncBuffer{}, h: sha256.New()}
	cmd.Stderr = d.stderr
	var err error
	if d.out, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("curl: %v (install curl)", err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill() // our own child, by its PID
			cmd.Wait()
		}
	})
	return d
}

// read reads the next n bytes of the download.
func (d *download) read(t testing.TB, n int64) {
	t.Helper()
	k, err := io.CopyN(d.h, d.out, n)
	d.got += k
	if err != nil {
		t.Fatalf("curl after %d bytes: %v: %s", d.got, err, d.stderr.String())
	}
}

// finish reads the rest and checks that the whole is the first n bytes of
// the content.
func (d *download) finish(t testing.TB, n int64) {
	t.Helper()
	k, err := io.Copy(d.h, d.out)
	d.got += k
	werr := d.cmd.Wait()
	if err != nil || werr != nil {
		t.Fatalf("curl after %d bytes: %v %v: %s", d.got, err, werr, d.stderr.String())
	}
	var sum [32]byte
	d.h.Sum(sum[:0])
	if d.got != n || sum != contentDigest(n) {
		t.Fatalf("got %d bytes (want %d), digest match %v", d.got, n, sum == contentDigest(n))
	}
}

// untilRoute waits until a's visor pings c over a route (after the services
// came back, say).
func untilRoute(t testing.TB, a, c *visorNode, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for sw(t, "skywire", "cli", "visor", "ping", c.pk, "-c", "1", "--rpc", a.sock).code != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no route from %s to %s:\n%s", a.name, c.name, a.proc.stderr.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func needCurl(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("process tests of the proxy run on Linux")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed (apt-get install curl)")
	}
}

// line is visors started as processes, each with a transport to the next
// of the given types, and the route finder able to route end to end.
func startLine(t testing.TB, links []string, apps func(i, n int, pks []string) []any) (*network, []*visorNode) {
	t.Helper()
	n := startNetwork(t)
	return n, startLineOn(t, n, links, apps)
}

// startLineOn is startLine on services already running.
func startLineOn(t testing.TB, n *network, links []string, apps func(i, n int, pks []string) []any) []*visorNode {
	t.Helper()
	return startLineWith(t, n, links, apps, nil)
}

// startLineWith is startLineOn with more of each visor's config set by
// edit (if not nil) before it starts.
func startLineWith(t testing.TB, n *network, links []string, apps func(i, n int, pks []string) []any, edit func(i int, cfg map[string]any)) []*visorNode {
	t.Helper()
	dir := shortDir(t)
	vs := make([]*visorNode, len(links)+1)
	pks := make([]string, len(vs))
	for i := range vs {
		vs[i] = newVisor(t, dir, string(rune('a'+i)), n)
		pks[i] = vs[i].pk
	}
	for i, v := range vs {
		v.edit(t, func(cfg map[string]any) {
			if i < len(links) {
				cfg["stcp"].(map[string]any)["pk_table"] = map[string]any{vs[i+1].pk: vs[i+1].stcpAddr}
			}
			cfg["apps"] = apps(i, len(vs), pks)
			if edit != nil {
				edit(i, cfg)
			}
		})
		v.start(t)
	}
	for i, typ := range links {
		until(t, "add-tp "+typ, func() bool {
			return sw(t, "skywire", "cli", "add-tp", vs[i+1].pk, "--type", typ, "--rpc", vs[i].sock).code == 0
		})
	}
	last := vs[len(vs)-1].pk
	until(t, "a route end to end", func() bool {
		return sw(t, "skywire", "cli", "visor", "ping", last, "-c", "1", "--rpc", vs[0].sock).code == 0
	})
	return vs
}

// proxyApps: skysocks-client on the first visor, skysocks (reaching
// loopback) on the last.
func proxyApps(i, n int, pks []string) []any {
	switch i {
	case 0:
		return []any{map[string]any{"app": "skysocks-client", "auto_start": false, "port": 13, "args": []string{}}}
	case n - 1:
		return []any{map[string]any{"app": "skysocks", "auto_start": true, "port": 3, "args": []string{"--allow-local"}}}
	}
	return []any{}
}

type appJSON struct {
	Name   string   `json:"name"`
	State  string   `json:"state"`
	PID    int      `json:"pid"`
	Status string   `json:"status"`
	Args   []string `json:"args"`
	Error  string   `json:"error"`
}

// proxyStart points a's proxy at pk and waits until its status starts
// with want.
func proxyStart(t testing.TB, a *visorNode, pk, socks, want string) appJSON {
	t.Helper()
	if r := sw(t, "skywire", "cli", "proxy", "start", pk, "--addr", socks, "--rpc", a.sock); r.code != 0 {
		t.Fatalf("proxy start: %s", r.stderr)
	}
	var st appJSON
	until(t, "proxy status "+want, func() bool {
		r := sw(t, "skywire", "cli", "proxy", "status", "--json", "--rpc", a.sock)
		if r.code != 0 {
			t.Fatalf("proxy status: %s", r.stderr)
		}
		json.Unmarshal([]byte(r.stdout), &st)
		return strings.HasPrefix(st.Status, want)
	})
	return st
}

type ruleJSON struct {
	Kind string `json:"kind"`
}

func rules(t testing.TB, v *visorNode) []ruleJSON {
	t.Helper()
	r := sw(t, "skywire", "cli", "visor", "route", "ls", "--json", "--rpc", v.sock)
	if r.code != 0 {
		t.Fatalf("route ls: %s", r.stderr)
	}
	var out []ruleJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("route ls --json printed %q", r.stdout)
	}
	return out
}

// Three visors A–B–C (transports A–B and B–C only): curl through A's proxy
// reaches a web server from C, byte-exact, with every hop type mix.
func TestSkysocksThroughThreeVisors(t *testing.T) {
	needCurl(t)
	web := webServer(t)
	for _, links := range [][]string{{"stcp", "stcp"}, {"stcp", "dmsg"}} {
		t.Run(strings.Join(links, "+"), func(t *testing.T) {
			n, vs := startLine(t, links, proxyApps)
			a, b, c := vs[0], vs[1], vs[2]
			socks := freePort(t)
			proxyStart(t, a, c.pk, socks, "connected to "+c.pk)

			const size = 256 << 20
			d := startCurl(t, socks, fmt.Sprintf("%s/bytes/%d", web, size))
			// While it runs, the middle visor forwards both directions.
			until(t, "b forwards the route", func() bool {
				fw := 0
				for _, r := range rules(t, b) {
					if r.Kind == "forward" {
						fw++
					}
				}
				return fw >= 2
			})
			d.finish(t, size)
			// Closed routes leave no rules on any hop.
			until(t, "every hop's rules removed", func() bool {
				return len(rules(t, a)) == 0 && len(rules(t, b)) == 0 && len(rules(t, c)) == 0
			})

			if links[1] == "stcp" {
				stalledReceiver(t, socks, web)
				refusedSetupNamesHop(t, a, b, c, socks)
				appCommands(t, c)
			}
			for _, v := range vs {
				if code := v.proc.stop(t); code != 0 {
					t.Fatalf("%s exited %d:\n%s", v.name, code, v.proc.stderr.String())
				}
			}
			n.proc.stop(t)
		})
	}
}

// A receiver that stops reading on one connection does not hold up
// another over the same transports.
func stalledReceiver(t *testing.T, socks, web string) {
	t.Helper()
	stalled := startCurl(t, socks, fmt.Sprintf("%s/bytes/%d", web, 256<<20))
	// Read a little, then nothing: curl blocks on its stdout, stops reading
	// its socket, and the route's window fills on every hop.
	stalled.read(t, 1<<20)
	time.Sleep(500 * time.Millisecond)
	const size = 128 << 20
	startCurl(t, socks, fmt.Sprintf("%s/bytes/%d", web, size)).finish(t, size)
	// The stalled one resumes and is intact too.
	stalled.finish(t, 256<<20)
}

// Pointing the proxy at a visor without skysocks: the status names the
// hop that refused the route, and pointing it back works again.
func refusedSetupNamesHop(t *testing.T, a, b, c *visorNode, socks string) {
	t.Helper()
	st := proxyStart(t, a, b.pk, socks, "cannot reach "+b.pk)
	if !strings.Contains(st.Status, "refused by hop 1 ("+b.pk[:8]+")") {
		t.Fatalf("status does not name the refusing hop: %q", st.Status)
	}
	proxyStart(t, a, c.pk, socks, "connected to "+c.pk)
}

// The app commands: ls, logs, stop, start, autostart (saved in the config).
func appCommands(t *testing.T, c *visorNode) {
	t.Helper()
	ls := func() appJSON {
		r := sw(t, "skywire", "cli", "visor", "app", "ls", "--json", "--rpc", c.sock)
		var apps []appJSON
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &apps) != nil || len(apps) != 1 {
			t.Fatalf("app ls: %d %s %s", r.code, r.stdout, r.stderr)
		}
		return apps[0]
	}
	if a := ls(); a.Name != "skysocks" || a.State != "running" || !strings.HasPrefix(a.Status, "serving SOCKS5") {
		t.Fatalf("app ls: %+v", a)
	}
	if r := sw(t, "skywire", "cli", "visor", "app", "logs", "skysocks", "--rpc", c.sock); r.code != 0 || !strings.Contains(r.stdout, "serving SOCKS5") {
		t.Fatalf("app logs: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := sw(t, "skywire", "cli", "visor", "app", "stop", "skysocks", "--rpc", c.sock); r.code != 0 || ls().State != "stopped" {
		t.Fatalf("app stop: %d %s", r.code, r.stderr)
	}
	if r := sw(t, "skywire", "cli", "visor", "app", "start", "skysocks", "--rpc", c.sock); r.code != 0 || ls().State != "running" {
		t.Fatalf("app start: %d %s", r.code, r.stderr)
	}
	if r := sw(t, "skywire", "cli", "visor", "app", "start", "nosuchapp", "--rpc", c.sock); r.code != 1 || !strings.Contains(r.stderr, "no such app") {
		t.Fatalf("app start of nothing: %d %s", r.code, r.stderr)
	}
	if r := sw(t, "skywire", "cli", "visor", "app", "autostart", "skysocks", "off", "--rpc", c.sock); r.code != 0 {
		t.Fatalf("autostart: %d %s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(c.cfg)
	var cfg struct {
		Apps []struct {
			App       string `json:"app"`
			AutoStart bool   `json:"auto_start"`
		} `json:"apps"`
	}
	if json.Unmarshal(b, &cfg) != nil || len(cfg.Apps) != 1 || cfg.Apps[0].AutoStart {
		t.Fatalf("autostart off not saved: %s", b)
	}
}

// `skywire demo` runs a network whose proxy works, and stops cleanly on
// Ctrl-C with no app left behind.
func TestDemo(t *testing.T) {
	needCurl(t)
	socks := freePort(t)
	// The process's stdout and stderr both land in p.stderr.
	p := start(t, "skywire", "demo", "--json", "--socks-addr", socks, "--links", "stcp,dmsg", "--hypervisor-addr", freePort(t))
	var info struct {
		Log    string `json:"log"`
		Web    string `json:"web"`
		Visors []struct {
			PK      string `json:"pk"`
			CLIAddr string `json:"cli_addr"`
			Chat    string `json:"chat"`
		} `json:"visors"`
		Hypervisor         string `json:"hypervisor"`
		HypervisorPassword string `json:"hypervisor_password"`
	}
	until(t, "the demo is ready", func() bool {
		s := p.stderr.String()
		i := strings.Index(s, "{")
		return i >= 0 && json.NewDecoder(strings.NewReader(s[i:])).Decode(&info) == nil
	})
	r, err := exec.Command("curl", "-sS", "--socks5-hostname", socks, info.Web).CombinedOutput()
	if err != nil || !strings.Contains(string(r), "a → b → c") {
		t.Fatalf("curl through the demo: %v: %s", err, r)
	}
	if info.Hypervisor == "" || info.HypervisorPassword == "" {
		t.Fatal("the demo names no hypervisor")
	}
	hc := newAPIClient(t, info.Hypervisor)
	hc.login(info.HypervisorPassword)
	hc.untilOnline(3)
	var apps []appJSON
	var pids []int
	for _, v := range []int{0, 2} {
		res := sw(t, "skywire", "cli", "visor", "app", "ls", "--json", "--rpc", info.Visors[v].CLIAddr)
		json.Unmarshal([]byte(res.stdout), &apps)
		for _, a := range apps {
			if a.State != "running" {
				t.Fatalf("app %+v", a)
			}
			pids = append(pids, a.PID)
		}
	}
	if len(pids) != 4 { // skychat and a proxy app on each end
		t.Fatalf("apps running: %v", pids)
	}
	for _, v := range info.Visors { // skychat on every visor
		if v.Chat == "" {
			t.Fatal("the demo names no skychat UI")
		}
		waitHTTP(t, p, v.Chat+"api/info")
	}
	// The remote shell the demo prints works: a's CLI runs a command on c.
	if res := sw(t, "skywire", "cli", "dmsgpty", "exec", info.Visors[2].PK, "--rpc", info.Visors[0].CLIAddr, "--", "echo", "from-c"); res.code != 0 || res.stdout != "from-c\n" {
		t.Fatalf("dmsgpty exec in the demo: %d %q %q", res.code, res.stdout, res.stderr)
	}

	// The machine sleeps (every process of the demo stopped) for longer
	// than a transport waits for a silent peer: the links drop, are
	// dialled again, and the proxy works again.
	all := append([]int{p.cmd.Process.Pid}, pids...)
	for _, pid := range all {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	time.Sleep(8 * time.Second)
	for _, pid := range all {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	until(t, "the proxy works again after the sleep", func() bool {
		r, err := exec.Command("curl", "-sS", "-m", "5", "--socks5-hostname", socks, info.Web).CombinedOutput()
		return err == nil && strings.Contains(string(r), "a → b → c")
	})
	if b, err := os.ReadFile(info.Log); err != nil || !strings.Contains(string(b), "nothing received for") {
		t.Fatalf("no link dropped during the sleep (%v): the test did not test the recovery", err)
	}

	p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop on SIGINT")
	}
	if p.err != nil {
		t.Fatalf("demo exited: %v\n%s", p.err, p.stderr.String())
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("app pid %d outlived the demo: %v", pid, err)
		}
	}
}

// cpuJiffies is the machine's busy time so far (/proc/stat).
func cpuJiffies(tb testing.TB) float64 {
	tb.Helper()
	b, err := exec.Command("head", "-1", "/proc/stat").Output()
	if err != nil {
		tb.Fatal(err)
	}
	f := strings.Fields(string(b))[1:]
	var busy float64
	for i, s := range f {
		v, _ := strconv.ParseFloat(s, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy / 100 // USER_HZ
}

// pythonServer serves a 1 GiB file of the content with `python3 -m
// http.server`, as the reference's figures were taken ("" without python3).
func pythonServer(b *testing.B, size int64) string {
	b.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		return ""
	}
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, "file"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, &repeatReader{}, size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	port := strings.TrimPrefix(freePort(b), "127.0.0.1:")
	p := startCmd(b, "python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, port)
	url := "http://127.0.0.1:" + port + "/file"
	until(b, "python's web server answers", func() bool {
		resp, err := http.Head(url)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	b.Cleanup(func() { p.cmd.Process.Kill() })
	return url
}

// BenchmarkSkysocksDownload: a 1 GiB download with curl straight from a
// loopback web server, and through skysocks over 1 and 2 hops of stcp,
// with the whole machine's CPU time per GiB and the visors' peak RSS. The
// web server is ours (Go) and, as the reference's figures were taken,
// python3 -m http.server.
func BenchmarkSkysocksDownload(b *testing.B) {
	needCurl(b)
	const size = 1 << 30
	servers := []struct{ name, url string }{{"go", fmt.Sprintf("%s/bytes/%d", webServer(b), size)}}
	if u := pythonServer(b, size); u != "" {
		servers = append(servers, struct{ name, url string }{"python", u})
	}
	run := func(b *testing.B, url, socks string, visors []*visorNode) {
		b.SetBytes(size)
		var peak float64
		cpu0 := cpuJiffies(b)
		for b.Loop() {
			// Straight to /dev/null: the tests check the bytes; here
			// nothing but curl, the proxy and the server may cost CPU.
			args := []string{"-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url}
			if socks != "" {
				args = append([]string{"--socks5-hostname", socks}, args...)
			}
			cmd := exec.Command("curl", args...)
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			tick := time.NewTicker(100 * time.Millisecond)
		sample:
			for {
				select {
				case err := <-done:
					if err != nil || strings.TrimSpace(out.String()) != strconv.Itoa(size) {
						b.Fatalf("curl: %v: %s", err, out.String())
					}
					break sample
				case <-tick.C:
					for _, v := range visors {
						peak = max(peak, rssMiB(b, v.proc.cmd.Process.Pid))
					}
				}
			}
			tick.Stop()
		}
		b.ReportMetric((cpuJiffies(b)-cpu0)/float64(b.N), "CPU-s/GiB")
		if len(visors) > 0 {
			b.ReportMetric(peak, "MiB-visor-peak-RSS")
		}
	}
	b.Run("direct", func(b *testing.B) {
		for _, srv := range servers {
			b.Run(srv.name, func(b *testing.B) { run(b, srv.url, "", nil) })
		}
	})
	// The ceiling of a proxied download's shape: plain TCP relays, no
	// encryption, SOCKS or routing (a route over h hops is h+1 relays
	// between curl and the server).
	for _, hops := range []int{1, 2} {
		b.Run(fmt.Sprintf("relays-%d-hop", hops), func(b *testing.B) {
			for _, srv := range servers {
				b.Run(srv.name, func(b *testing.B) { run(b, relayChain(b, hops+1, srv.url), "", nil) })
			}
		})
	}
	for _, hops := range []int{1, 2} {
		b.Run(fmt.Sprintf("%d-hop", hops), func(b *testing.B) {
			n, vs := startLine(b, []string{"stcp", "stcp"}[:hops], proxyApps)
			socks := freePort(b)
			proxyStart(b, vs[0], vs[len(vs)-1].pk, socks, "connected to ")
			for _, srv := range servers {
				b.Run(srv.name, func(b *testing.B) { run(b, srv.url, socks, vs) })
			}
			for _, v := range vs {
				v.proc.stop(b)
			}
			n.proc.stop(b)
		})
	}
}

// relayChain starts n plain TCP relays on loopback, each passing both
// directions to the next and the last to url's host, and returns url
// with the first relay as its host. The relays copy through user space
// with 256 KiB buffers, which is faster here than the kernel's splice.
func relayChain(b *testing.B, n int, url string) string {
	b.Helper()
	rest := strings.TrimPrefix(url, "http://")
	next, path, _ := strings.Cut(rest, "/")
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ln.Close() })
		go relayServe(ln, next)
		next = ln.Addr().String()
	}
	return "http://" + next + "/" + path
}

func relayServe(ln net.Listener, next string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			d, err := net.Dial("tcp", next)
			if err != nil {
				return
			}
			defer d.Close()
			half := func(dst, src net.Conn) {
				// Wrapped so that io.CopyBuffer cannot pick splice.
				io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 256<<10))
				dst.(*net.TCPConn).CloseWrite()
			}
			done := make(chan struct{})
			go func() { half(d, c); close(done) }()
			half(c, d)
			<-done
		}()
	}
}
