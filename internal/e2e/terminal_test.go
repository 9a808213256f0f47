//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
)

// The hypervisor's web terminal in a real browser: from a visor's page,
// the terminal page opens a shell over the visor's link; typed
// `echo hello` shows hello; the audit log records the session and its
// end when the page closes, and the visor's shell ends with it. Without
// the CSRF token, from another origin, or on a visor with
// dmsgpty.hypervisors off, no shell starts.
func TestTerminalInBrowser(t *testing.T) {
	br := newBrowser(t)
	n := startNetwork(t)
	dir := shortDir(t)
	h := startHypervisor(t, dir, n)
	vs := ptyVisorsOn(t, n, dir, 2, func(i int, cfg map[string]any) {
		h.trusting(i, cfg)
		cfg["dmsgpty"].(map[string]any)["shell"] = "/bin/sh"
		if i == 1 {
			cfg["dmsgpty"].(map[string]any)["hypervisors"] = false
		}
	})
	a, b := vs[0], vs[1]
	const password = "a fine long password"

	br.do("open the UI", chromedp.Navigate(h.url), chromedp.WaitVisible(`#setup-form`))
	br.do("set the password",
		chromedp.SendKeys(`#setup-code`, strings.ToLower(h.code)),
		chromedp.SendKeys(`#setup-password`, password),
		chromedp.SendKeys(`#setup-password2`, password),
		chromedp.Click(`#setup-button`),
		chromedp.WaitVisible(`#visors`))
	br.until("two visors online", `document.querySelectorAll('#visors tbody .dot.online').length === 2`)
	br.do("open a's page", chromedp.Navigate(h.url+"/#/visor/"+a.pk), chromedp.WaitVisible(`#visor-terminal`))
	br.screenshot("visor-with-terminal-button")
	href := br.eval(`document.querySelector('#visor-terminal').getAttribute('href')`)
	if href != "/terminal.html#"+a.pk {
		t.Fatalf("the Terminal action links to %q", href)
	}

	br.do("open the terminal", chromedp.Navigate(h.url+href), chromedp.WaitVisible(`.xterm-helper-textarea`))
	br.until("the terminal connected", `document.querySelector('#state').textContent === 'connected'`)
	const screen = `(() => { const b = TERM.buffer.active, out = []; for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true)); return out; })()`
	br.until("the shell's prompt", screen+`.some(l => l.startsWith('#') || l.startsWith('$'))`) // typed before it, a line would be echoed before the prompt
	br.do("type echo hello", chromedp.Focus(`.xterm-helper-textarea`), typeLine("echo hel''lo"))
	br.until("hello on a line of its own", screen+`.some(l => l.trim() === 'hello')`)
	br.do("type stty size", typeLine("stty size"))
	br.until("the page's size reached the shell", screen+`.some(l => l.trim() === TERM.rows + ' ' + TERM.cols)`)
	br.screenshot("terminal")
	if v := br.eval(`JSON.stringify(window.cspViolations)`); v != "[]" {
		t.Fatalf("the terminal page broke its Content-Security-Policy: %s", v)
	}
	// At phone width the terminal fits the window, and the shell learns
	// the new size.
	br.do("a phone-sized window", chromedp.EmulateViewport(400, 860))
	br.until("the terminal fitted to 400 px", `TERM.cols < 60`)
	br.do("type clear; stty size", typeLine("clear; stty size"))
	br.until("the narrow size reached the shell", screen+`.some(l => l.trim() === TERM.rows + ' ' + TERM.cols)`)
	br.screenshot("terminal-400px")
	br.do("the usual window", chromedp.EmulateReset())
	if acc := a.ptyAccess(t); acc.Sessions != 1 {
		t.Fatalf("a runs %d sessions, want 1", acc.Sessions)
	}

	// Audited: opened, then closed (with how long) when the page goes.
	audit := func() string {
		return br.eval(`fetch('/api/audit').then(r => r.text())`)
	}
	if log := audit(); !strings.Contains(log, `"terminal opened"`) || !strings.Contains(log, a.pk) {
		t.Fatalf("the audit log has no terminal session: %s", log)
	}
	br.do("open the visor list", chromedp.Navigate(h.url+"/#/visors"), chromedp.WaitVisible(`#visors`))
	until(t, "a's shell ended with the page", func() bool { return a.ptyAccess(t).Sessions == 0 })
	until(t, "the audit log says the terminal closed", func() bool { return strings.Contains(audit(), `"terminal closed"`) })

	// b does not give its hypervisors a shell: the page says so.
	br.do("open b's terminal", chromedp.Navigate(h.url+"/terminal.html#"+b.pk), chromedp.WaitVisible(`#term`))
	br.until("b refused", `document.querySelector('#state').textContent === 'failed' && document.querySelector('#note').textContent.includes('dmsgpty.hypervisors')`)
	br.screenshot("terminal-refused")

	// The upgrade itself: a session cookie alone is not enough.
	c := newAPIClient(t, h.url)
	c.login(password)
	wsURL := strings.Replace(h.url, "http", "ws", 1) + "/pty/" + a.pk
	dial := func(query string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return websocket.Dial(ctx, wsURL+query, &websocket.DialOptions{HTTPClient: c.hc, HTTPHeader: hdr})
	}
	if _, resp, err := dial("", nil); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("no CSRF token: %v %v", err, resp)
	}
	q := "?" + url.Values{"csrf": {c.csrf}}.Encode()
	if _, resp, err := dial(q, http.Header{"Origin": {"http://evil.example"}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another origin: %v %v", err, resp)
	}
	anon := newAPIClient(t, h.url)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, resp, err := websocket.Dial(ctx, wsURL+q, &websocket.DialOptions{HTTPClient: anon.hc}); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("not logged in: %v %v", err, resp)
	}
	// With all of it, from Go: the shell answers, and exit ends it; four
	// at once (the visor's default cap for one key, here the hypervisor's).
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); terminalEcho(t, c, a.pk) }()
	}
	wg.Wait()
}

// terminalEcho opens the hypervisor's terminal on visor pk as c's session
// (without a browser), types an echo of "hello" written with two quotes in
// it (so the typed line never reads hello), reads hello, and ends the shell
// with `exit 3`, whose status the hypervisor reports.
func terminalEcho(t *testing.T, c *apiClient, pk string) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wsURL := strings.Replace(c.url, "http", "ws", 1) + "/pty/" + pk + "?" + url.Values{"csrf": {c.csrf}}.Encode()
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: c.hc, HTTPHeader: http.Header{"Origin": {c.url}}})
	if err != nil {
		fail("terminal on %s: %v", pk[:8], err)
		return
	}
	defer ws.CloseNow()
	ws.Write(ctx, websocket.MessageBinary, []byte("echo hel''lo\r"))
	var screen strings.Builder
	sentExit := false
	for {
		typ, data, err := ws.Read(ctx)
		if err != nil {
			fail("terminal on %s: %v; it showed:\n%s", pk[:8], err, screen.String())
			return
		}
		if typ == websocket.MessageBinary {
			screen.Write(data)
			if !sentExit && strings.Contains(screen.String(), "hello\r\n") {
				sentExit = true
				ws.Write(ctx, websocket.MessageBinary, []byte("exit 3\r"))
			}
			continue
		}
		var m struct {
			Type    string `json:"type"`
			Code    *int   `json:"code"`
			Message string `json:"message"`
		}
		json.Unmarshal(data, &m)
		switch m.Type {
		case "error":
			fail("terminal on %s: %s", pk[:8], m.Message)
			return
		case "exit":
			if !sentExit || m.Code == nil || *m.Code != 3 {
				fail("terminal on %s ended with %s; it showed:\n%s", pk[:8], data, screen.String())
			}
			return
		}
	}
}

// typeLine types text into the focused element as a keyboard would deliver
// it to a page (text input, then the Enter key). chromedp's SendKeys sends
// each character twice over to xterm.js (as a key and as text).
func typeLine(text string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: text}); err != nil {
			return chromedp.Void{}, err
		}
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}); err != nil {
				return chromedp.Void{}, err
			}
		}
		return chromedp.Void{}, nil
	}
}
