//go:build linux

package e2e

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// endlessServer streams bytes to every connection until it fails.
func endlessServer(t *testing.T) *net.TCPAddr {
	t.Helper()
	return serveEach(t, func(c net.Conn) { io.Copy(c, &repeatReader{}) })
}

// serveEach listens on a loopback port until the test ends and runs handle
// for every connection (which it closes after).
func serveEach(t testing.TB, handle func(c net.Conn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}

// socksConnect opens a SOCKS5 CONNECT to target through the proxy at socks.
func socksConnect(t *testing.T, socks string, target *net.TCPAddr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", socks)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	req := []byte{5, 1, 0, 5, 1, 0, 1}
	req = append(req, target.IP.To4()...)
	req = binary.BigEndian.AppendUint16(req, uint16(target.Port))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 2+10)
	if _, err := io.ReadFull(c, reply); err != nil || reply[1] != 0 || reply[3] != 0 {
		t.Fatalf("SOCKS5 through the proxy: %x %v", reply, err)
	}
	c.SetDeadline(time.Time{})
	return c
}

// A hop SIGKILLed mid-transfer: the local client of the proxy sees a reset,
// never a clean end of stream (which would look like a complete download).
func TestCutRouteResetsLocalClient(t *testing.T) {
	needCurl(t)
	n, vs := startLine(t, []string{"stcp", "stcp"}, proxyApps)
	a, b, c := vs[0], vs[1], vs[2]
	socks := freePort(t)
	proxyStart(t, a, c.pk, socks, "connected to "+c.pk)
	target := endlessServer(t)
	conn := socksConnect(t, socks, target)
	defer conn.Close()
	if _, err := io.CopyN(io.Discard, conn, 8<<20); err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	b.proc.cmd.Process.Kill() // our own child, by its PID
	<-b.proc.done
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	got, err := io.Copy(io.Discard, conn)
	switch {
	case err == nil:
		t.Fatalf("the cut route ended cleanly after %d more bytes: a truncated download looks complete", got)
	case errors.Is(err, io.EOF):
		t.Fatalf("clean end: %v", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the cut was never noticed: %v", err)
	}
	t.Logf("after the cut: %d more bytes, then %v", got, err)
	for _, v := range []*visorNode{a, c} {
		if code := v.proc.stop(t); code != 0 {
			t.Fatalf("%s exited %d:\n%s", v.name, code, v.proc.stderr.String())
		}
	}
	n.proc.stop(t)
}

// 50 curl requests at once through the proxy over a 2-hop route, as a
// browser opens them: every one completes, byte-exact (no setup is lost).
func TestParallelRequestsThroughProxy(t *testing.T) {
	needCurl(t)
	web := webServer(t)
	n, vs := startLine(t, []string{"stcp", "stcp"}, proxyApps)
	a, c := vs[0], vs[2]
	socks := freePort(t)
	proxyStart(t, a, c.pk, socks, "connected to "+c.pk)
	const parallel, size = 50, 1 << 20
	ds := make([]*download, parallel)
	for i := range ds {
		ds[i] = startCurl(t, socks, fmt.Sprintf("%s/bytes/%d", web, size))
	}
	for _, d := range ds {
		d.finish(t, size)
	}
	for _, v := range vs {
		if code := v.proc.stop(t); code != 0 {
			t.Fatalf("%s exited %d:\n%s", v.name, code, v.proc.stderr.String())
		}
	}
	n.proc.stop(t)
}

// The services restart during a download over a 2-hop route: the download
// goes on byte-exact, a dial while they are down fails at once naming the
// route finder, and afterwards new routes work again with no manual step
// (the transports re-register themselves, freshly signed).
func TestServicesRestartDuringTraffic(t *testing.T) {
	t.Parallel() // most of it is waiting for re-registration
	needCurl(t)
	web := webServer(t)
	n, vs := startLine(t, []string{"stcp", "stcp"}, proxyApps)
	a, b, c := vs[0], vs[1], vs[2]
	socks := freePort(t)
	proxyStart(t, a, c.pk, socks, "connected to "+c.pk)
	const size = 512 << 20
	d := startCurl(t, socks, fmt.Sprintf("%s/bytes/%d", web, size))
	d.read(t, 16<<20)
	stopped := time.Now()
	if code := n.proc.stop(t); code != 0 {
		t.Fatalf("svc all exited %d", code)
	}
	t.Logf("svc all stopped in %v during traffic", time.Since(stopped).Round(time.Millisecond))
	// A new route needs the route finder: it fails at once, saying so.
	r := sw(t, "skywire", "cli", "visor", "ping", c.pk, "-c", "1", "--rpc", a.sock)
	if r.code == 0 || !strings.Contains(r.stderr, "route finder") {
		t.Fatalf("ping while the services are down: exit %d: %s", r.code, r.stderr)
	}
	n.run(t)
	d.finish(t, size) // the live download never stopped
	// New 2-hop routes work again once the transports re-registered.
	untilRoute(t, a, c, 90*time.Second)
	startCurl(t, socks, fmt.Sprintf("%s/bytes/%d", web, 1<<20)).finish(t, 1<<20)
	for _, v := range []*visorNode{a, b, c} {
		if code := v.proc.stop(t); code != 0 {
			t.Fatalf("%s exited %d:\n%s", v.name, code, v.proc.stderr.String())
		}
	}
	n.proc.stop(t)
}

// services are the discovery services as separate processes.
type services struct {
	n     *network
	args  map[string][]string
	procs map[string]*process
	urls  map[string]string // health URL
}

// Restart order: what depends on another comes after it.
var serviceOrder = []string{"dmsg-discovery", "dmsg-server", "transport-discovery", "address-resolver", "route-finder"}

func startServices(t testing.TB) *services {
	t.Helper()
	p := freePorts(t, 5)
	pk, sk := cipher.GenerateKeyPair()
	skFile := filepath.Join(shortDir(t), "dmsg-server.key")
	if err := os.WriteFile(skFile, []byte(sk.Hex()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	url := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", p[i]) }
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", p[i]) }
	s := &services{
		n: &network{dmsgDisc: url(0), tpDisc: url(1), resolver: url(2), routeFinder: url(4)},
		args: map[string][]string{
			"dmsg-discovery":      {"svc", "dmsg-discovery", "--addr", addr(0), "--trusted-servers", pk.Hex()},
			"dmsg-server":         {"svc", "dmsg-server", "--addr", addr(3), "--discovery", url(0), "--sk-file", skFile},
			"transport-discovery": {"svc", "transport-discovery", "--addr", addr(1)},
			"address-resolver":    {"svc", "address-resolver", "--addr", addr(2)},
			"route-finder":        {"svc", "route-finder", "--addr", addr(4), "--transport-discovery", url(1)},
		},
		procs: map[string]*process{},
		urls:  map[string]string{"dmsg-discovery": url(0), "transport-discovery": url(1), "address-resolver": url(2), "route-finder": url(4)},
	}
	for _, name := range serviceOrder {
		s.start(t, name)
	}
	s.n.proc = s.procs["dmsg-discovery"]
	return s
}

func (s *services) start(t testing.TB, name string) {
	t.Helper()
	s.procs[name] = start(t, "skywire", s.args[name]...)
	if u := s.urls[name]; u != "" {
		waitHTTP(t, s.procs[name], u+"/health")
		return
	}
	// The dmsg server is up once the discovery lists it.
	until(t, "the dmsg server is listed", func() bool {
		resp, err := http.Get(s.urls["dmsg-discovery"] + "/v1/servers")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var list []json.RawMessage
		json.NewDecoder(resp.Body).Decode(&list)
		return len(list) > 0
	})
}

// Each service restarted in turn, as separate processes, during a 2-hop
// download: the download goes on byte-exact, and afterwards everything is
// registered again by itself (visors' dmsg entries, transports, routes).
func TestEachServiceRestartDuringTraffic(t *testing.T) {
	t.Parallel() // most of it is waiting for re-registration
	needCurl(t)
	web := webServer(t)
	svcs := startServices(t)
	vs := startLineOn(t, svcs.n, []string{"stcp", "stcp"}, proxyApps)
	a, c := vs[0], vs[2]
	socks := freePort(t)
	proxyStart(t, a, c.pk, socks, "connected to "+c.pk)
	const size = 512 << 20
	d := startCurl(t, socks, fmt.Sprintf("%s/bytes/%d", web, size))
	d.read(t, 16<<20)
	for _, name := range serviceOrder {
		if code := svcs.procs[name].stop(t); code != 0 {
			t.Fatalf("%s exited %d", name, code)
		}
		svcs.start(t, name)
	}
	d.finish(t, size)
	deadline := time.Now().Add(90 * time.Second)
	for _, v := range vs {
		for {
			resp, err := http.Get(svcs.urls["dmsg-discovery"] + "/v1/entries/" + v.pk)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), `"delegated_servers":["`) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's dmsg entry never came back", v.name)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	untilRoute(t, a, c, time.Until(deadline))
	startCurl(t, socks, fmt.Sprintf("%s/bytes/%d", web, 1<<20)).finish(t, 1<<20)
	for _, v := range vs {
		if code := v.proc.stop(t); code != 0 {
			t.Fatalf("%s exited %d:\n%s", v.name, code, v.proc.stderr.String())
		}
	}
	for _, name := range serviceOrder {
		svcs.procs[name].stop(t)
	}
}

// svc all with few file descriptors, flooded past its limit from one host:
// no listener dies (the dmsg server's used to, taking every service down),
// and once the flood ends every service answers again.
func TestServicesSurviveDescriptorExhaustion(t *testing.T) {
	p := freePorts(t, 6)
	args := fmt.Sprintf("ulimit -n 160 && exec %s svc all --host 127.0.0.1 --dmsg-discovery-port %d --transport-discovery-port %d --address-resolver-port %d --dmsg-server-port %d --route-finder-port %d --service-discovery-port %d",
		filepath.Join(binDir, "skywire"), p[0], p[1], p[2], p[3], p[4], p[5])
	proc := startCmd(t, "sh", "-c", args)
	urls := []string{}
	for _, i := range []int{0, 1, 2, 4} {
		u := fmt.Sprintf("http://127.0.0.1:%d", p[i])
		waitHTTP(t, proc, u+"/health")
		urls = append(urls, u)
	}
	var floods []*flooder
	for _, i := range p {
		floods = append(floods, flood(fmt.Sprintf("127.0.0.1:%d", i), 100, false))
	}
	time.Sleep(500 * time.Millisecond) // the accept loops meet EMFILE meanwhile
	held := usageOf(t, proc.cmd.Process.Pid).fds
	time.Sleep(1500 * time.Millisecond)
	for _, f := range floods {
		f.end()
	}
	if held < 150 {
		t.Fatalf("the flood held only %d of the 160 descriptors: the test proves nothing", held)
	}
	select {
	case <-proc.done:
		t.Fatalf("svc all exited during the flood: %v\n%s", proc.err, proc.stderr.String())
	default:
	}
	for _, u := range urls {
		waitHTTP(t, proc, u+"/health")
	}
	if code := proc.stop(t); code != 0 {
		t.Fatalf("svc all exited %d:\n%s", code, proc.stderr.String())
	}
}
