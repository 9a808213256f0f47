//go:build linux

package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// tab opens another tab of b's browser, saving screenshots beside b's.
func (b *browser) tab() *browser {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("a new tab: %v", err)
	}
	return &browser{t: b.t, ctx: ctx, dir: b.dir, shot: 50}
}

// Two visors' skychat pages in a real browser, two hops apart: A writes to
// B, B's page shows it without a reload (a script in it stays text), B
// replies, both show "delivered"; B's visor restarted, A's next message is
// delivered after the redial, and B's history is still there.
func TestSkychatInBrowser(t *testing.T) {
	n := startNetwork(t)
	ports := freePorts(t, 2)
	ui := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i/2]) }
	vs := startLineWith(t, n, []string{"stcp", "stcp"}, func(i, _ int, _ []string) []any {
		if i == 1 {
			return []any{}
		}
		return []any{map[string]any{"app": "skychat", "auto_start": true, "port": 1, "args": []string{"--addr", ui(i)}}}
	}, nil)
	a, b := vs[0], vs[2]
	waitHTTP(t, a.proc, "http://"+ui(0)+"/api/info")
	waitHTTP(t, b.proc, "http://"+ui(2)+"/api/info")

	pa := newBrowser(t)
	pb := pa.tab()
	pa.do("open A's chat", chromedp.Navigate("http://"+ui(0)+"/"), chromedp.WaitVisible(`#new-chat`))
	pb.do("open B's chat", chromedp.Navigate("http://"+ui(2)+"/"), chromedp.WaitVisible(`#new-chat`))
	pb.until("B's page is live", `document.querySelector('#live').classList.contains('on')`)
	pa.do("A starts a conversation with B",
		chromedp.SendKeys(`#new-peer`, b.pk), chromedp.Click(`#new-chat button`), chromedp.WaitVisible(`#compose`),
		chromedp.SendKeys(`#text`, "hello <script>window.pwned=1</script><img src=x onerror=window.pwned=2>"), chromedp.Click(`#compose button`))
	pb.until("A's message pushed to B's page", fmt.Sprintf(`!!document.querySelector('#convs li[data-peer="%s"]')`, a.pk))
	pb.do("B opens it", chromedp.Click(fmt.Sprintf(`#convs li[data-peer="%s"]`, a.pk)))
	pb.until("the message shown as text", `[...document.querySelectorAll('#messages .text')].some(e => e.textContent.includes('<script>window.pwned=1</script>'))`)
	if got := pb.eval(`String(window.pwned)`); got != "undefined" {
		t.Fatalf("a message ran script in the page: window.pwned = %s", got)
	}
	if got := pb.eval(`String(document.querySelectorAll('#messages img, #messages script').length)`); got != "0" {
		t.Fatalf("a message made %s elements", got)
	}
	pa.until("A sees it delivered", `!!document.querySelector('#messages .msg.out .state.delivered')`)
	pb.do("B replies", chromedp.SendKeys(`#text`, "hi A"), chromedp.Click(`#compose button`))
	pb.until("B sees its reply delivered", `!!document.querySelector('#messages .msg.out .state.delivered')`)
	pa.until("A's page shows the reply", `[...document.querySelectorAll('#messages .msg.in .text')].some(e => e.textContent === 'hi A')`)
	pa.screenshot("skychat-a")
	pb.screenshot("skychat-b")

	// B's visor restarts: A's next message goes after the redial, and B
	// keeps its history.
	b.proc.cmd.Process.Kill()
	<-b.proc.done
	b.start(t)
	waitHTTP(t, b.proc, "http://"+ui(2)+"/api/info")
	r := vs[1]
	until(t, "the relay's transport to B again", func() bool {
		return sw(t, "skywire", "cli", "add-tp", b.pk, "--type", "stcp", "--rpc", r.sock).code == 0
	})
	pa.do("A writes again", chromedp.SendKeys(`#text`, "after the restart"), chromedp.Click(`#compose button`))
	pa.until("delivered after the redial", `[...document.querySelectorAll('#messages .msg.out')].some(e => e.querySelector('.text').textContent === 'after the restart' && e.querySelector('.state.delivered'))`)
	pb.do("B's page reloaded", chromedp.Navigate("http://"+ui(2)+"/#"+a.pk), chromedp.WaitVisible(`#compose`))
	pb.until("B's history and the new message", `document.querySelectorAll('#messages .msg').length === 3 && [...document.querySelectorAll('#messages .text')].at(-1).textContent === 'after the restart'`)
	pb.screenshot("skychat-b-after-restart")
	pb.do("a phone-sized window", chromedp.EmulateViewport(400, 800))
	pb.until("the conversation fills it", `getComputedStyle(document.querySelector('aside')).display === 'none' && document.documentElement.scrollWidth <= 400`)
	pb.screenshot("skychat-400px")
	pb.do("back to the list", chromedp.Click(`#back`))
	pb.until("the list fills it", `getComputedStyle(document.querySelector('aside')).display !== 'none' && getComputedStyle(document.querySelector('#empty')).display === 'none' && document.documentElement.scrollWidth <= 400`)
	pb.screenshot("skychat-400px-list")

	// Another site cannot make the page's API send.
	out, _ := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json",
		"-d", fmt.Sprintf(`{"peer":%q,"text":"forged"}`, b.pk), "http://"+ui(0)+"/api/send").Output()
	if strings.TrimSpace(string(out)) != "403" {
		t.Fatalf("a POST without X-Skychat: %q", out)
	}
}
