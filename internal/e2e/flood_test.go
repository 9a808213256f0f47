//go:build linux

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/internal/loopback"
)

// usage is a process's resident memory and open descriptors.
type usage struct {
	rss float64 // MiB
	fds int
}

func usageOf(tb testing.TB, pid int) usage {
	tb.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		tb.Fatal(err)
	}
	return usage{rss: rssMiB(tb, pid), fds: len(ents)}
}

func (u usage) String() string { return fmt.Sprintf("%.1f MiB, %d fds", u.rss, u.fds) }

// flooder holds connections from 127.0.0.2 to addr: idle, or trickling a
// request body a byte at a time.
type flooder struct {
	mu     sync.Mutex
	conns  []net.Conn
	opened int
	stop   chan struct{}
	wg     sync.WaitGroup
}

func flood(addr string, n int, slowBody bool) *flooder {
	f := &flooder{stop: make(chan struct{})}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: loopback.OtherHost}, Timeout: 2 * time.Second}
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			continue
		}
		f.opened++
		if slowBody {
			fmt.Fprintf(c, "POST /v1/transports HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
		}
		f.conns = append(f.conns, c)
	}
	if slowBody {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-f.stop:
					return
				case <-t.C:
					for _, c := range f.conns {
						c.SetWriteDeadline(time.Now().Add(time.Millisecond))
						c.Write([]byte{'a'})
					}
				}
			}
		}()
	}
	return f
}

// cutOff counts the flood's connections the server has closed.
func (f *flooder) cutOff() int {
	n := 0
	for _, c := range f.conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if _, err := io.Copy(io.Discard, c); !os.IsTimeout(err) {
			n++ // closed (perhaps after an error answer), not waiting
		}
	}
	return n
}

func (f *flooder) end() {
	close(f.stop)
	f.wg.Wait()
	for _, c := range f.conns {
		c.Close()
	}
}

// BenchmarkFloods runs the hostile-host floods against real processes and
// reports, for each, the honest clients' success during the flood and the
// target's memory and descriptors before, during and after.
func BenchmarkFloods(b *testing.B) {
	if os.Getuid() != 0 && !strings.HasPrefix(os.Getenv("CI"), "1") {
		b.Log("(binds 127.0.0.2; works unprivileged on Linux)")
	}
	const size = 1000
	report := func(name string, before, during, after usage, ok, tries int, extra string) {
		b.Logf("%-28s honest %3d/%-3d  before %-18v during %-18v after %-18v %s", name, ok, tries, before, during, after, extra)
		b.ReportMetric(float64(ok)/float64(tries)*100, name+"-honest-%")
		b.ReportMetric(during.rss, name+"-MiB-during")
		b.ReportMetric(float64(during.fds), name+"-fds-during")
	}
	n := startNetwork(b)
	svc := n.proc.cmd.Process.Pid
	time.Sleep(200 * time.Millisecond)

	// 1. Slow-body clients at each HTTP service.
	for _, svcURL := range [][2]string{{"dmsg-discovery", n.dmsgDisc}, {"transport-discovery", n.tpDisc}, {"route-finder", n.routeFinder}, {"address-resolver", n.resolver}} {
		name, u := svcURL[0], svcURL[1]
		addr := strings.TrimPrefix(u, "http://")
		before := usageOf(b, svc)
		f := flood(addr, size, true)
		time.Sleep(300 * time.Millisecond)
		ok := 0
		hc := &http.Client{Timeout: 5 * time.Second}
		for range 50 {
			if resp, err := hc.Get(u + "/health"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok++
				}
			}
		}
		during := usageOf(b, svc)
		time.Sleep(16 * time.Second) // past the 15 s request limit
		cut := f.cutOff()
		f.end()
		time.Sleep(300 * time.Millisecond)
		report("slow-body-"+name, before, during, usageOf(b, svc), ok, 50, fmt.Sprintf("(%d of %d slow clients cut off)", cut, f.opened))
	}

	// 2. Idle connections at the dmsg server, while a visor joins dmsg.
	dmsgAddr := "127.0.0.1:" + n.args[11]
	before := usageOf(b, svc)
	f := flood(dmsgAddr, size, false)
	dir := shortDir(b)
	v := newVisor(b, dir, "v", n)
	v.start(b)
	joined := 0
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(n.dmsgDisc + "/v1/entries/" + v.pk)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), `"delegated_servers":["`) {
				joined = 1
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	during := usageOf(b, svc)
	f.end()
	time.Sleep(300 * time.Millisecond)
	report("idle-dmsg-server", before, during, usageOf(b, svc), joined, 1, "(a new visor's dmsg session)")

	// 3. Idle connections at a visor's app gateway and stcp port, while a
	// peer sets up transports and apps start.
	gw := fmt.Sprintf("127.0.0.1:%d", freePorts(b, 1)[0])
	c := newVisor(b, dir, "c", n)
	c.edit(b, func(cfg map[string]any) { cfg["app_server_addr"] = gw })
	c.start(b)
	a := newVisor(b, dir, "a", n)
	a.edit(b, func(cfg map[string]any) {
		cfg["stcp"].(map[string]any)["pk_table"] = map[string]any{c.pk: c.stcpAddr}
	})
	a.start(b)
	vpid := c.proc.cmd.Process.Pid
	before = usageOf(b, vpid)
	fg, fs := flood(gw, size, false), flood(c.stcpAddr, size, false)
	time.Sleep(300 * time.Millisecond)
	ok, tries := 0, 0
	for range 10 {
		tries++
		if sw(b, "skywire", "cli", "add-tp", c.pk, "--type", "stcp", "--rpc", a.sock).code == 0 {
			ok++
			for _, tp := range a.lsTP(b) {
				sw(b, "skywire", "cli", "rm-tp", tp.ID, "--rpc", a.sock)
			}
		}
	}
	for range 3 {
		tries += 2
		if sw(b, "skywire", "cli", "visor", "app", "stop", "skysocks", "--rpc", c.sock).code == 0 {
			ok++
		}
		if sw(b, "skywire", "cli", "visor", "app", "start", "skysocks", "--rpc", c.sock).code == 0 {
			ok++
		}
	}
	during = usageOf(b, vpid)
	fg.end()
	fs.end()
	time.Sleep(300 * time.Millisecond)
	report("idle-gateway+stcp-visor", before, during, usageOf(b, vpid), ok, tries, "(add-tp ×10, app stop/start ×3)")

	for _, p := range []*visorNode{a, c, v} {
		p.proc.stop(b)
	}
	began := time.Now()
	n.proc.stop(b)
	b.Logf("svc all stopped %v after SIGTERM", time.Since(began).Round(time.Millisecond))
	for range b.N {
	}
}
