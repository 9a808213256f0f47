//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/testnet"
	"github.com/skyfleet/skywire/svc/suite"
)

// benchVisors is how many visors the hypervisor benchmark links.
const benchVisors = 200

// BenchmarkHypervisor measures a hypervisor process managing 200 visors
// (in this process, on an in-process testnet): GET /api/visors (and, as
// the reference of the same run, GET /api/ping), the first paint of the
// visor list in headless Chromium, the time from a transport coming up on
// a visor to its event reaching the browser, and the hypervisor's RSS
// with none and with 200 visors linked.
func BenchmarkHypervisor(b *testing.B) {
	dir := shortDir(b)
	// The hypervisor's key first: the visors list it.
	h := newHypervisor(b, dir, "http://127.0.0.1:1")
	var hpk cipher.PubKey
	if err := hpk.UnmarshalText([]byte(h.pk)); err != nil {
		b.Fatal(err)
	}
	n, err := testnet.Start(context.Background(), testnet.Config{Dir: dir, Visors: benchVisors, Unlinked: true,
		Hypervisors: func(int, []cipher.PubKey) []cipher.PubKey { return []cipher.PubKey{hpk} }})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	// Let the visors settle (each with its dmsg session) before the
	// hypervisor starts, so that its start is not a measure of theirs.
	settle := time.Now().Add(3 * time.Minute)
	for i := 0; i < benchVisors; {
		if len(n.Nodes[i].Dmsg().Servers()) > 0 {
			i++
			continue
		}
		if time.Now().After(settle) {
			b.Fatalf("visor %d has no dmsg session after 3 minutes", i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	edit(b, h.cfg, func(cfg map[string]any) {
		cfg["dmsg"].(map[string]any)["discovery"] = n.Suite.URL(suite.DmsgDiscovery)
	})
	// The reference of the same run: a hypervisor no visor lists.
	idle := newHypervisor(b, shortDir(b), n.Suite.URL(suite.DmsgDiscovery))
	idle.start(b)
	h.start(b)
	// RSS once every visor is linked and read, before any login: a
	// password hash (argon2id) takes memory of its own for a while.
	began := time.Now()
	deadline := began.Add(3 * time.Minute)
	for strings.Count(h.proc.stderr.String(), "visor linked") < benchVisors {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d visors linked after 3 minutes", strings.Count(h.proc.stderr.String(), "visor linked"), benchVisors)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Logf("%d visors linked %.1f s after the hypervisor started", benchVisors, time.Since(began).Seconds())
	time.Sleep(3 * time.Second) // every watcher reads its visor's state
	rss, rss0 := rssMiB(b, h.proc.cmd.Process.Pid), rssMiB(b, idle.proc.cmd.Process.Pid)
	b.Logf("hypervisor RSS: %.1f MiB with %d visors, %.1f MiB with none (%.0f KiB per visor)", rss, benchVisors, rss0, (rss-rss0)*1024/benchVisors)
	c := newAPIClient(b, h.url)
	c.setup(h.code, "a fine long password")
	c.untilOnlineWithin(benchVisors, time.Minute)

	get := func(b *testing.B, path string) int {
		resp, err := c.hc.Get(h.url + path)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return int(n)
	}
	b.Run("api-ping", func(b *testing.B) {
		for b.Loop() {
			get(b, "/api/ping")
		}
	})
	b.Run("api-visors-200", func(b *testing.B) {
		size := 0
		for b.Loop() {
			size = get(b, "/api/visors")
		}
		b.ReportMetric(float64(size), "bytes/answer")
	})
	b.Run("api-visors-200-parallel", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				get(b, "/api/visors")
			}
		})
	})

	br := newBrowser(b)
	br.do("log in", chromedp.Navigate(h.url), chromedp.WaitVisible(`#login-form`),
		chromedp.SendKeys(`#password`, "a fine long password"), chromedp.Click(`#login-button`), chromedp.WaitVisible(`#visors`))
	rows := fmt.Sprintf(`document.querySelectorAll('#visors tbody .dot.online').length === %d`, benchVisors)
	br.until("every visor listed", rows)
	br.screenshot("visors-200")
	if png, err := chromedp.Run(br.ctx, chromedp.CaptureScreenshot()); err == nil { // what the window shows
		os.WriteFile(filepath.Join(br.dir, "visors-200-window.png"), png, 0o644)
	}
	br.do("a phone-sized window", chromedp.EmulateViewport(400, 860))
	if png, err := chromedp.Run(br.ctx, chromedp.CaptureScreenshot()); err == nil {
		os.WriteFile(filepath.Join(br.dir, "visors-200-400px-window.png"), png, 0o644)
	}
	br.do("the usual window", chromedp.EmulateReset())
	b.Run("first-paint-200", func(b *testing.B) {
		var total float64
		for b.Loop() {
			br.do("a blank page", chromedp.Navigate("about:blank"))
			br.do("the visor list", chromedp.Navigate(h.url+"/#/visors"), chromedp.WaitReady(`#main`))
			br.until("every visor listed", rows)
			total += br.evalFloat(`performance.now()`)
		}
		b.ReportMetric(total/float64(b.N), "ms/paint")
	})

	// Transport up on a visor → its event in the browser.
	br.eval(`(window.__seen = new Map(), S.es.addEventListener('visor', ev => {
		for (const t of JSON.parse(ev.data).transports) if (!__seen.has(t.id)) __seen.set(t.id, Date.now());
	}), 'ok')`)
	b.Run("event-latency", func(b *testing.B) {
		var lat []float64
		i := 0
		for b.Loop() {
			from, to := i%benchVisors, (i+1)%benchVisors
			i++
			r := sw(b, "skywire", "cli", "add-tp", n.Nodes[to].PK().Hex(), "--type", "dmsg", "--rpc", n.Nodes[from].CLIAddr(), "--json")
			var tp struct {
				ID      string    `json:"id"`
				Created time.Time `json:"created"`
			}
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &tp) != nil {
				b.Fatalf("add-tp %d → %d: %s", from, to, r.stderr)
			}
			br.until("the transport's event", fmt.Sprintf(`__seen.has(%q)`, tp.ID))
			seen := br.evalFloat(fmt.Sprintf(`__seen.get(%q)`, tp.ID))
			lat = append(lat, seen-float64(tp.Created.UnixNano())/1e6)
			sw(b, "skywire", "cli", "rm-tp", tp.ID, "--rpc", n.Nodes[from].CLIAddr())
		}
		slices.Sort(lat)
		b.ReportMetric(lat[len(lat)/2], "ms-median")
		b.ReportMetric(lat[len(lat)-1], "ms-max")
	})
	b.ReportMetric(rss, "hypervisor-RSS-MiB")
	b.ReportMetric(rss0, "hypervisor-RSS-idle-MiB")
}

// edit changes a JSON config file.
func edit(tb testing.TB, path string, fn func(cfg map[string]any)) {
	tb.Helper()
	v := &visorNode{cfg: path}
	v.edit(tb, fn)
}

// untilOnlineWithin is untilOnline with a longer bound.
func (c *apiClient) untilOnlineWithin(n int, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		online := 0
		for _, v := range c.visors() {
			if v.State == "online" {
				online++
			}
		}
		if online == n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d of %d visors online after %s", online, n, within)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *browser) evalFloat(expr string) float64 {
	b.t.Helper()
	f, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", expr, strings.TrimSpace(err.Error()))
	}
	return f
}
