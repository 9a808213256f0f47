package hypervisor

import (
	"embed"
	"io/fs"
	"net/http"
)

// The web UI: plain HTML, CSS and JavaScript embedded in the binary, with
// no build step and nothing loaded from elsewhere (the Content-Security-
// Policy forbids it).
//
//go:embed ui
var uiFiles embed.FS

// csp allows only the hypervisor's own files and connections.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// terminalCSP is the terminal page's: the same but for inline styles,
// which xterm.js's renderer writes into <style> elements it makes (its
// colours and cell sizes). Scripts stay the page's own files only
// (docs/decisions.md).
const terminalCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func uiHandler() http.Handler {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embed pattern guarantees the folder
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		if r.URL.Path == "/terminal.html" {
			h.Set("Content-Security-Policy", terminalCSP)
		} else {
			h.Set("Content-Security-Policy", csp)
		}
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		// The UI routes with the URL fragment: every other path is a file.
		files.ServeHTTP(w, r)
	})
}
