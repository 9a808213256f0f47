package hypervisor

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/dmsgpty"
)

// The web terminal: GET /pty/{pk}?csrf=…&rows=…&cols=… upgrades to a
// WebSocket that the hypervisor bridges to a shell on visor pk, opened
// over that visor's link (admin.OpenPTY; the visor serves it when its
// dmsgpty.hypervisors is on). The session cookie authenticates it; the
// CSRF token in the query (a browser cannot set headers on a WebSocket)
// and the Origin check of the upgrade keep other sites out.
//
//	browser → hypervisor  binary: keys;  text: {"type":"resize","rows":R,"cols":C}
//	hypervisor → browser  binary: output;  text: {"type":"ready","session":…} · {"type":"exit","code":N,"reason":…} · {"type":"error","message":…}
//
// Closing the page closes the WebSocket, which ends the shell. Each
// session's start and end (with how long it lasted) go to the audit log.

// termMessage is a text message of the terminal's WebSocket.
type termMessage struct {
	Type    string `json:"type"`
	Rows    uint16 `json:"rows,omitempty"`
	Cols    uint16 `json:"cols,omitempty"`
	Session string `json:"session,omitempty"`
	Code    *int   `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// maxTermMessage bounds what the browser may send in one message.
const maxTermMessage = 64 << 10

func (h *Hypervisor) terminal(w http.ResponseWriter, r *http.Request, who *caller) {
	pk, ok := pkOf(w, r)
	if !ok {
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("csrf")), []byte(who.csrf)) != 1 {
		writeError(w, &admin.Error{Code: "csrf", Message: "missing or wrong csrf query parameter (the token comes with the login answer and GET /api/session)"})
		return
	}
	c := h.links.Client(pk)
	if c == nil {
		if seen, _ := h.cache.known(pk); seen {
			writeError(w, admin.Errorf(admin.CodeUnavailable, "visor %s is offline", pk.Short()))
		} else {
			writeError(w, admin.Errorf(admin.CodeNotFound, "no visor %s has linked to this hypervisor", pk.Short()))
		}
		return
	}
	rows, _ := strconv.ParseUint(r.URL.Query().Get("rows"), 10, 16)
	cols, _ := strconv.ParseUint(r.URL.Query().Get("cols"), 10, 16)
	// Accept checks that the page asking is this hypervisor's own (Origin).
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept answered
	}
	defer ws.CloseNow()
	ws.SetReadLimit(maxTermMessage)
	ctx := r.Context()
	sendText := func(m termMessage) error {
		b, _ := json.Marshal(m)
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return ws.Write(wctx, websocket.MessageText, b)
	}
	fail := func(msg string) {
		sendText(termMessage{Type: "error", Message: msg})
		ws.Close(websocket.StatusNormalClosure, "")
	}

	origin := fmt.Sprintf("hypervisor %s, session %s from %s", h.cfg.PK.Short(), who.session, who.addr)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	rwc, err := admin.DialUpgrade(dctx, c, admin.OpenPTY, admin.PTYRequest{Origin: origin})
	cancel()
	if err != nil {
		h.audit(who, pk.Hex(), "terminal", "", asError(err).Status(), err.Error())
		var ae *admin.Error
		if errors.As(err, &ae) { // the visor's own words, which name it
			fail(ae.Message)
		} else {
			fail(fmt.Sprintf("visor %s: %v", pk.Short(), err))
		}
		return
	}
	s, err := dmsgpty.Open(rwc, dmsgpty.Request{Mode: dmsgpty.ModeShell, Term: "xterm-256color", Rows: uint16(rows), Cols: uint16(cols)})
	if err != nil {
		var re *dmsgpty.RefusedError
		msg := err.Error()
		if errors.As(err, &re) {
			msg = re.Reason
		}
		h.audit(who, pk.Hex(), "terminal", "", http.StatusForbidden, msg)
		fail(fmt.Sprintf("visor %s refused the terminal: %s", pk.Short(), msg))
		return
	}
	defer s.Close()
	began := time.Now()
	h.audit(who, pk.Hex(), "terminal opened", "session "+s.Accepted.Session+", shell "+s.Accepted.Shell, http.StatusOK, "")
	h.log.Info("terminal opened", zap.String("visor", pk.Hex()), zap.String("session", s.Accepted.Session), zap.String("remote", who.addr))
	sendText(termMessage{Type: "ready", Session: s.Accepted.Session})

	// The browser's messages: keys and sizes. Its end is the session's.
	inDone := make(chan error, 1)
	go func() {
		for {
			typ, data, err := ws.Read(ctx)
			if err != nil {
				inDone <- err
				s.Close() // the page went: the shell ends, and Recv below with it
				return
			}
			if typ == websocket.MessageBinary {
				_, err = s.Write(data)
			} else {
				var m termMessage
				if json.Unmarshal(data, &m) == nil && m.Type == "resize" {
					err = s.Resize(m.Rows, m.Cols)
				}
			}
			if err != nil {
				inDone <- err
				s.Close()
				return
			}
		}
	}()
	// The visor's output, to the browser, until the shell exits.
	ended := "the page was closed"
	for {
		out, err := s.Recv()
		if err != nil {
			select {
			case <-inDone: // the page went: that is what ended it
			default:
				ended = "the visor's stream broke: " + err.Error()
				fail(ended)
			}
			break
		}
		if out.Exited {
			code := out.Code
			ended = fmt.Sprintf("the shell exited (%d)", code)
			if out.Reason != "" {
				ended = "the visor ended it: " + out.Reason
			}
			sendText(termMessage{Type: "exit", Code: &code, Reason: out.Reason})
			ws.Close(websocket.StatusNormalClosure, "")
			break
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = ws.Write(wctx, websocket.MessageBinary, out.Data)
		cancel()
		if err != nil {
			break // the page went; closing s ends the shell
		}
	}
	s.Close()
	dur := time.Since(began).Round(time.Second)
	h.audit(who, pk.Hex(), "terminal closed", fmt.Sprintf("session %s after %s: %s", s.Accepted.Session, dur, ended), http.StatusOK, "")
	h.log.Info("terminal closed", zap.String("visor", pk.Hex()), zap.String("session", s.Accepted.Session), zap.Duration("duration", dur))
}
