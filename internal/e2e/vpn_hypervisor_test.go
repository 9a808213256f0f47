//go:build linux

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/sys/unix"
)

// dialIn dials addr from inside network namespace ns: the socket is made
// on a thread moved into ns, then the thread comes back.
func dialIn(ns, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread() // else the thread, still in ns, ends with this goroutine
	}
	return c, err
}

// nsForward serves a loopback port here that forwards to addr inside ns,
// so that a browser of this test reaches a web UI in a namespace.
func nsForward(t testing.TB, ns, addr string) string {
	t.Helper()
	return serveEach(t, func(c net.Conn) {
		far, err := dialIn(ns, addr)
		if err != nil {
			return
		}
		defer far.Close()
		go func() { io.Copy(far, c); far.(*net.TCPConn).CloseWrite() }()
		io.Copy(c, far)
	}).String()
}

// The VPN run from the hypervisor's web UI, in a real browser: the client
// visor, linked to the hypervisor directly, gets a server key, the kill
// switch and a start from the VPN panel; the panel shows it connected and
// the client reaches the internet host through the tunnel. With the
// server's visor killed the hypervisor still reaches the client (its link
// is kept outside the tunnel and the kill switch), and the panel tells
// the tunnel is down until the server is back; Stop in the panel restores
// the client's host exactly.
func TestVPNFromTheHypervisor(t *testing.T) {
	n := newVPNNet(t, 1)
	br := newBrowser(t)
	c := n.clients[0]
	ports := freePorts(t, 2)
	h := &hypervisorNode{cfg: filepath.Join(n.dir, "hypervisor.json")}
	link := fmt.Sprintf("10.50.10.1:%d", ports[1])
	if r := sw(t, "skywire", "hypervisor", "gen-config", "-o", h.cfg, "--http-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--link-addr", link, "--dmsg-discovery", "http://10.50.2.1:9090"); r.code != 0 {
		t.Fatalf("hypervisor gen-config: %s", r.stderr)
	}
	h.pk = configPK(t, h.cfg)
	h.url = "http://" + nsForward(t, n.server, fmt.Sprintf("127.0.0.1:%d", ports[0]))
	h.proc = startCmd(t, "ip", "netns", "exec", n.server, binDir+"/skywire", "hypervisor", "run", "-c", h.cfg)
	h.ready(t)

	srv := n.visor("s", n.server, vpnServerApp())
	before := hostState(t, c)
	cl := n.visor("c", c, []any{map[string]any{"app": "vpn-client", "port": 43, "auto_start": false, "args": []string{}}}, func(cfg map[string]any) {
		cfg["hypervisors"] = []any{map[string]any{"public_key": h.pk, "address": link}}
	})
	cl.addTPType(t, srv.pk, "stcpr")

	br.do("open the UI", chromedp.Navigate(h.url), chromedp.WaitVisible(`#setup-form`))
	br.do("set the password",
		chromedp.SendKeys(`#setup-code`, h.code),
		chromedp.SendKeys(`#setup-password`, "a fine long password"),
		chromedp.SendKeys(`#setup-password2`, "a fine long password"),
		chromedp.Click(`#setup-button`),
		chromedp.WaitVisible(`#visors`))
	br.until("the client visor online", fmt.Sprintf(`!!document.querySelector('#visors tbody tr[data-pk="%s"] .dot.online')`, cl.pk))
	br.do("open the client visor's apps", chromedp.Navigate(h.url+"/#/visor/"+cl.pk+"/apps"), chromedp.WaitVisible(`#apps`))
	br.until("the VPN panel", `document.querySelector("#vpn-form") !== null`)
	br.until("the panel says not connected", `document.querySelector('#vpn-panel').innerText.includes('not connected')`)
	br.screenshot("vpn-not-connected")
	br.do("start the VPN with the kill switch",
		chromedp.SendKeys(`#vpn-form input[name=server]`, srv.pk),
		chromedp.Click(`#vpn-form input[name=killswitch]`),
		chromedp.Click(`#vpn-form button[type=submit]`))
	n.untilThrough(c, 90*time.Second)
	br.until("the panel says connected", `document.querySelector('#vpn-panel .badge.running') !== null && document.querySelector('#vpn-panel').innerText.includes('10.211.')`)
	br.until("the panel shows traffic and the kill switch", `/Kill switch\s*on/.test(document.querySelector('#vpn-panel').innerText) && /Latency\s*[0-9.]+\s*ms/.test(document.querySelector('#vpn-panel').innerText)`)
	br.screenshot("vpn-connected")

	// The tunnel down: the hypervisor keeps its direct link to the client.
	srv.proc.cmd.Process.Kill()
	<-srv.proc.done
	if pid := findPID("vpn-server"); pid != 0 {
		killPID(pid)
	}
	br.until("the panel says the tunnel is down", `document.querySelector('#vpn-panel .badge.running') === null && document.querySelector('#vpn-panel').innerText.includes('Last error')`)
	br.screenshot("vpn-reconnecting")
	api := newAPIClient(t, h.url)
	api.login("a fine long password")
	for range 5 { // over the next seconds, the client stays online
		online := false
		for _, v := range api.visors() {
			online = online || (v.PK == cl.pk && v.State == "online")
		}
		if !online {
			t.Fatalf("the hypervisor lost the client while its tunnel was down: %+v", api.visors())
		}
		time.Sleep(time.Second)
	}
	srv.start(t)
	n.untilThrough(c, 90*time.Second)
	br.until("the panel says connected again", `document.querySelector('#vpn-panel .badge.running') !== null`)

	br.do("stop the VPN", chromedp.Click(`#vpn-stop`))
	br.until("the panel says not connected", `document.querySelector('#vpn-panel').innerText.includes('not connected')`)
	br.screenshot("vpn-stopped")
	until(t, "the client's host restored", func() bool { return hostState(t, c) == before })
}
