//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/skyfleet/skywire/internal/testtool"
)

// hypervisorNode is a `skywire hypervisor run` process.
type hypervisorNode struct {
	cfg, url, pk, code string
	proc               *process
}

// startHypervisor generates a hypervisor config on n's dmsg and runs it,
// reading its URL and setup code from what it prints.
func startHypervisor(t testing.TB, dir string, n *network) *hypervisorNode {
	t.Helper()
	h := newHypervisor(t, dir, n.dmsgDisc)
	h.start(t)
	return h
}

// newHypervisor generates a hypervisor config on the dmsg of discovery
// dmsgDisc, on a free port.
func newHypervisor(t testing.TB, dir, dmsgDisc string) *hypervisorNode {
	t.Helper()
	h := &hypervisorNode{cfg: filepath.Join(dir, "hypervisor-config.json")}
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	if r := sw(t, "skywire", "hypervisor", "gen-config", "-o", h.cfg, "--http-addr", addr, "--dmsg-discovery", dmsgDisc); r.code != 0 {
		t.Fatalf("hypervisor gen-config: %s", r.stderr)
	}
	h.pk = configPK(t, h.cfg)
	h.url = "http://" + addr
	return h
}

// start runs the hypervisor and reads its setup code.
func (h *hypervisorNode) start(t testing.TB) {
	t.Helper()
	h.proc = start(t, "skywire", "hypervisor", "run", "-c", h.cfg)
	h.ready(t)
}

// ready reads the setup code the hypervisor's process prints and waits for
// its API.
func (h *hypervisorNode) ready(t testing.TB) {
	t.Helper()
	codeRE := regexp.MustCompile(`setup code\s+([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})`)
	until(t, "the hypervisor prints its setup code", func() bool {
		m := codeRE.FindStringSubmatch(h.proc.stderr.String())
		if m != nil {
			h.code = m[1]
		}
		return m != nil
	})
	waitHTTP(t, h.proc, h.url+"/api/ping")
}

// trusting lists the hypervisor's key in a visor config.
func (h *hypervisorNode) trusting(_ int, cfg map[string]any) {
	cfg["hypervisors"] = []any{map[string]any{"public_key": h.pk}}
}

// apiClient calls a hypervisor's REST API as a logged-in user.
type apiClient struct {
	t    testing.TB
	url  string
	hc   *http.Client
	csrf string
}

func newAPIClient(t testing.TB, url string) *apiClient {
	jar, _ := cookiejar.New(nil)
	return &apiClient{t: t, url: url, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// call sends a request (with the CSRF token but on GET) and decodes a 200
// answer into out.
func (c *apiClient) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.url+path, rd)
	if method != http.MethodGet {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (c *apiClient) session(path string, body any) {
	c.t.Helper()
	var s struct {
		CSRF string `json:"csrf_token"`
	}
	if err := c.call("POST", path, body, &s); err != nil {
		c.t.Fatal(err)
	}
	c.csrf = s.CSRF
}

func (c *apiClient) login(password string) {
	c.session("/api/login", map[string]string{"password": password})
}

func (c *apiClient) setup(code, password string) {
	c.session("/api/setup", map[string]string{"code": code, "password": password})
}

type visorStateJSON struct {
	PK    string `json:"pk"`
	State string `json:"state"`
	Local bool   `json:"local"`
}

func (c *apiClient) visors() []visorStateJSON {
	c.t.Helper()
	var vs []visorStateJSON
	if err := c.call("GET", "/api/visors", nil, &vs); err != nil {
		c.t.Fatal(err)
	}
	return vs
}

// untilOnline waits for n visors online.
func (c *apiClient) untilOnline(n int) []visorStateJSON {
	c.t.Helper()
	var vs []visorStateJSON
	until(c.t, fmt.Sprintf("%d visors online in the hypervisor", n), func() bool {
		vs = c.visors()
		online := 0
		for _, v := range vs {
			if v.State == "online" {
				online++
			}
		}
		return online == n
	})
	return vs
}

// A visor that is its own hypervisor (gen-config -i) serves the UI,
// manages itself in-process and every visor that lists its key.
func TestVisorAsHypervisor(t *testing.T) {
	n := startNetwork(t)
	dir := shortDir(t)
	x := newVisor(t, dir, "x", n)
	addr := fmt.Sprintf("127.0.0.1:%d", freePorts(t, 1)[0])
	// As gen-config -i writes it (cli's TestGenConfigHypervisor), on a free port.
	x.edit(t, func(cfg map[string]any) {
		cfg["hypervisor"] = map[string]any{"http_addr": addr, "db_path": "./x-hypervisor.db"}
	})
	y := newVisor(t, dir, "y", n)
	y.edit(t, func(cfg map[string]any) { cfg["hypervisors"] = []any{map[string]any{"public_key": x.pk}} })
	x.start(t)
	y.start(t)
	codeRE := regexp.MustCompile(`setup code\s+([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})`)
	var code string
	until(t, "x prints the setup code", func() bool {
		m := codeRE.FindStringSubmatch(x.proc.stderr.String())
		if m != nil {
			code = m[1]
		}
		return m != nil
	})
	c := newAPIClient(t, "http://"+addr)
	c.setup(code, "a fine long password")
	vs := c.untilOnline(2)
	for _, v := range vs {
		if (v.PK == x.pk) != v.Local {
			t.Fatalf("local flags: %+v", vs)
		}
	}
	for _, pk := range []string{x.pk, y.pk} {
		var info struct {
			PK string `json:"pk"`
		}
		if err := c.call("GET", "/api/visors/"+pk+"/v1/info", nil, &info); err != nil || info.PK != pk {
			t.Fatalf("info of %s through the visor's hypervisor: %+v %v", pk[:8], info, err)
		}
		// A terminal on each: x's own through the in-process pipe, y's over its link.
		terminalEcho(t, c, pk)
	}
}

// browser is a headless Chromium tab.
type browser struct {
	t    testing.TB
	ctx  context.Context
	dir  string // screenshots
	shot int
}

func needChromium(t testing.TB) string {
	t.Helper()
	return testtool.Need(t, "chromium", "chromium-browser", "google-chrome")
}

func newBrowser(t testing.TB) *browser {
	t.Helper()
	exe := needChromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelA() })
	// The first run starts the browser, which lives as long as the
	// context it ran on: this one, not a step's shorter one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	dir := os.Getenv("SKYWIRE_SCREENSHOTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "hypervisor-screenshots"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of every page: %s", dir)
	return &browser{t: t, ctx: ctx, dir: dir}
}

// do runs steps, failing the test with what.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// until waits for a JavaScript expression to be truthy in the page.
func (b *browser) until(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 2000)`))
		b.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("never in the browser: %s: %v\npage:\n%s", what, err, text)
	}
}

func (b *browser) eval(expr string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, err)
	}
	return s
}

// screenshot saves the page as NN-name.png.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	b.shot++
	path := filepath.Join(b.dir, fmt.Sprintf("%02d-%s.png", b.shot, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Error(err)
	}
}

// The hypervisor in a real browser: set the password with the setup code,
// see three visors online, add a transport (and find it with `cli ls-tp`),
// stop and start an app and read its log, and watch a visor go offline
// and come back, all without reloading the page.
func TestHypervisorInBrowser(t *testing.T) {
	br := newBrowser(t)
	n := startNetwork(t)
	dir := shortDir(t)
	h := startHypervisor(t, dir, n)
	vs := startLineWith(t, n, []string{"stcp", "stcp"}, proxyApps, func(i int, cfg map[string]any) {
		h.trusting(i, cfg)
		if i == 0 { // a has vpn-client too (never started here: it would take this host's routes)
			cfg["apps"] = append(cfg["apps"].([]any), map[string]any{"app": "vpn-client", "port": 43, "auto_start": false, "args": []string{}})
		}
	})
	a, b, c := vs[0], vs[1], vs[2]

	br.do("open the UI", chromedp.Navigate(h.url), chromedp.WaitVisible(`#setup-form`))
	br.screenshot("setup")
	br.do("set the password",
		chromedp.SendKeys(`#setup-code`, strings.ToLower(h.code)),
		chromedp.SendKeys(`#setup-password`, "a fine long password"),
		chromedp.SendKeys(`#setup-password2`, "a fine long password"),
		chromedp.Click(`#setup-button`),
		chromedp.WaitVisible(`#visors`))
	br.until("three visors online", `document.querySelectorAll('#visors tbody .dot.online').length === 3`)
	br.screenshot("visors")
	br.do("a phone-sized window", chromedp.EmulateViewport(400, 860))
	br.screenshot("visors-400px")
	br.do("open a visor", chromedp.Navigate(h.url+"/#/visor/"+a.pk), chromedp.WaitVisible(`#overview-info`))
	br.screenshot("visor-400px")
	br.do("the usual window", chromedp.EmulateReset())

	// Add a transport a → c over dmsg from the UI.
	br.do("open a's transports", chromedp.Navigate(h.url+"/#/visor/"+a.pk+"/transports"), chromedp.WaitVisible(`#add-tp`))
	br.until("transport types listed", `document.querySelectorAll('#tp-type option').length > 1`)
	br.do("add a transport",
		chromedp.SendKeys(`#tp-pk`, c.pk),
		chromedp.SetValue(`#tp-type`, "dmsg"),
		chromedp.Click(`#tp-persistent`),
		chromedp.Click(`#tp-add`))
	br.until("the new transport listed", fmt.Sprintf(`[...document.querySelectorAll('#transports tbody tr')].some(r => r.innerText.includes('dmsg') && r.innerText.includes(%q))`, c.pk[:8]))
	br.screenshot("transports")
	found := false
	for _, tp := range a.lsTP(t) {
		if tp.RemotePK == c.pk && tp.Type == "dmsg" {
			found = true
		}
	}
	if !found {
		t.Fatalf("the transport added in the UI is not in `cli ls-tp`: %+v", a.lsTP(t))
	}

	// a's VPN panel: vpn-client's state, and the form to start it.
	br.do("open a's apps", chromedp.Navigate(h.url+"/#/visor/"+a.pk+"/apps"), chromedp.WaitVisible(`#apps`))
	br.until("the VPN panel", `!$('#vpn-panel').hidden && $('#vpn-panel').innerText.includes('not connected') && !!$('#vpn-form')`)
	br.screenshot("vpn-panel")

	// Stop and start skysocks on c, then read its log.
	br.do("open c's apps", chromedp.Navigate(h.url+"/#/visor/"+c.pk+"/apps"), chromedp.WaitVisible(`#apps`))
	br.until("skysocks running", `!!document.querySelector('#apps button[data-act=stop][data-app=skysocks]')`)
	br.do("stop skysocks", chromedp.Click(`#apps button[data-act=stop][data-app=skysocks]`))
	br.until("skysocks stopped", `!!document.querySelector('#apps tr[data-app=skysocks] .badge.stopped') || (document.querySelector('#apps tr[data-app=skysocks]')||{innerText:''}).innerText.includes('stopped')`)
	if r := sw(t, "skywire", "cli", "visor", "app", "ls", "--rpc", c.sock, "--json"); !strings.Contains(r.stdout, `"stopped"`) {
		t.Fatalf("skysocks stopped in the UI, but the CLI says: %s %s", r.stdout, r.stderr)
	}
	br.do("start skysocks", chromedp.Click(`#apps button[data-act=start][data-app=skysocks]`))
	// Running again, and its status reported (the row is redrawn then: a
	// click before it would land on the old row).
	br.until("skysocks running again", `!!document.querySelector('#apps button[data-act=stop][data-app=skysocks]') && document.querySelector('#apps tr[data-app=skysocks]').innerText.includes('serving SOCKS5')`)
	br.do("open its log", chromedp.Click(`#apps button[data-act=logs][data-app=skysocks]`))
	br.until("its log shows", `document.querySelector('#app-log').textContent.length > 20`)
	br.screenshot("apps-and-log")

	// Labels (what the UI's label editor calls), a ping over two hops, and
	// the overview with its traffic chart while a bench runs a → c.
	for pk, label := range map[string]string{a.pk: "alpha (home PC)", b.pk: "bravo (Raspberry Pi)", c.pk: "charlie (router)"} {
		br.eval(fmt.Sprintf(`api('PUT', '/api/labels/%s', {label: %q}).then(() => 'ok')`, pk, label))
	}
	br.until("labels shown", fmt.Sprintf(`(S.labels[%q] || '') !== ''`, c.pk))
	br.do("ping c from a", chromedp.Navigate(h.url+"/#/visor/"+a.pk+"/ping"), chromedp.WaitVisible(`#ping-form`),
		chromedp.SendKeys(`#ping-pk`, c.pk), chromedp.SetValue(`#ping-hops`, "2"), chromedp.Click(`#ping-go`))
	br.until("the ping's two-hop path", `document.querySelectorAll('#ping-result .hop').length === 3`)
	br.screenshot("ping")
	benched := make(chan result, 1)
	go func() {
		benched <- sw(t, "skywire", "cli", "visor", "bench", c.pk, "--bytes", "1073741824", "--hops", "2", "--rpc", a.sock)
	}()
	br.do("open a's overview", chromedp.Navigate(h.url+"/#/visor/"+a.pk), chromedp.WaitVisible(`#overview-info`))
	br.until("a's info", fmt.Sprintf(`document.querySelector('#overview-info').innerText.includes(%q)`, a.cfg))
	br.until("traffic in the chart", fmt.Sprintf(`[...(S.traffic.get(%q) || new Map()).values()].some(s => s.length >= 4 && s[s.length - 1].sent > s[0].sent + 1e6)`, a.pk))
	br.screenshot("visor-overview")
	if r := <-benched; r.code != 0 {
		t.Fatalf("bench: %s", r.stderr)
	}
	br.do("open the audit log", chromedp.Navigate(h.url+"/#/audit"), chromedp.WaitVisible(`#audit`))
	br.until("the audit log names the transport added", `document.querySelector('#audit').innerText.includes('POST /v1/transports')`)
	br.screenshot("audit")
	br.do("open the settings", chromedp.Navigate(h.url+"/#/settings"), chromedp.WaitVisible(`#pw-form`))
	br.screenshot("settings")
	br.do("open the routes", chromedp.Navigate(h.url+"/#/visor/"+b.pk+"/routes"), chromedp.WaitVisible(`#routes`))
	br.screenshot("routes")

	// b goes offline and comes back: the list follows without a reload.
	br.do("back to the list", chromedp.Navigate(h.url+"/#/visors"), chromedp.WaitVisible(`#visors`))
	br.eval(`window.__sameDocument = 'yes'`)
	b.proc.stop(t)
	row := fmt.Sprintf(`document.querySelector('#visors tr[data-pk=%q]')`, b.pk)
	br.until("b offline", row+`.querySelector('.dot.offline') !== null`)
	br.screenshot("visor-offline")
	b.start(t)
	br.until("b online again", row+`.querySelector('.dot.online') !== null`)
	if br.eval(`window.__sameDocument || 'reloaded'`) != "yes" {
		t.Fatal("the page reloaded")
	}

	br.do("change the password", chromedp.Navigate(h.url+"/#/settings"), chromedp.WaitVisible(`#pw-form`),
		chromedp.SendKeys(`#pw-old`, "a fine long password"), chromedp.SendKeys(`#pw-new`, "a finer longer password"),
		chromedp.SendKeys(`#pw-new2`, "a finer longer password"), chromedp.Click(`#pw-form button[type=submit]`))
	br.until("the password changed", `[...document.querySelectorAll('.toast')].some(t => t.textContent.includes('Password changed'))`)
	br.do("log out", chromedp.Click(`#logout`), chromedp.WaitVisible(`#login-form`))
	br.do("a wrong password", chromedp.SendKeys(`#password`, "a fine long password"), chromedp.Click(`#login-button`))
	br.until("the wrong password refused", `document.querySelector('#login-error').textContent.includes('wrong password')`)
	br.screenshot("login")
	br.eval(`document.querySelector('#password').value = '', 'cleared'`)
	br.do("log in", chromedp.SendKeys(`#password`, "a finer longer password"), chromedp.Click(`#login-button`), chromedp.WaitVisible(`#pw-form`)) // back where it was
	br.do("the visor list", chromedp.Navigate(h.url+"/#/visors"), chromedp.WaitVisible(`#visors`))
	br.until("three visors online after login", `document.querySelectorAll('#visors tbody .dot.online').length === 3`)
}

// Processes: three visors list the hypervisor and one does not; the one
// that does not is not reachable through it; a visor killed shows offline
// and, started again, comes back by itself. `hypervisor passwd` (from
// stdin) sets the password while the hypervisor is stopped, and the
// hypervisor restarted keeps it and every visor it saw.
func TestHypervisorProcesses(t *testing.T) {
	n := startNetwork(t)
	dir := shortDir(t)
	h := startHypervisor(t, dir, n)
	vs := startLineWith(t, n, []string{"stcp", "stcp", "stcp"}, func(int, int, []string) []any { return []any{} }, func(i int, cfg map[string]any) {
		if i < 3 {
			h.trusting(i, cfg)
		}
	})
	c := newAPIClient(t, h.url)
	c.setup(h.code, "a fine long password")
	c.untilOnline(3)
	unlisted := vs[3].pk
	if err := c.call("GET", "/api/visors/"+unlisted+"/v1/info", nil, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("the visor that does not list the hypervisor: %v", err)
	}
	b := vs[1]
	b.proc.cmd.Process.Kill()
	<-b.proc.done
	state := func(pk string) string {
		for _, v := range c.visors() {
			if v.PK == pk {
				return v.State
			}
		}
		return "absent"
	}
	until(t, "b offline after a kill", func() bool { return state(b.pk) == "offline" })
	b.start(t)
	until(t, "b online again", func() bool { return state(b.pk) == "online" })

	h.proc.stop(t)
	cmd := exec.Command(filepath.Join(binDir, "skywire"), "hypervisor", "passwd", "-c", h.cfg)
	cmd.Stdin = strings.NewReader("another fine password\n")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "password set") {
		t.Fatalf("hypervisor passwd: %v\n%s", err, out)
	}
	h.proc = start(t, "skywire", "hypervisor", "run", "-c", h.cfg)
	waitHTTP(t, h.proc, h.url+"/api/ping")
	if strings.Contains(h.proc.stderr.String(), "setup code") {
		t.Fatal("a setup code although a password is set")
	}
	c = newAPIClient(t, h.url)
	if err := c.call("POST", "/api/login", map[string]string{"password": "a fine long password"}, nil); err == nil {
		t.Fatal("the old password still works")
	}
	c.login("another fine password")
	c.untilOnline(3)
}
