package hypervisor

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/buildinfo"
)

// The REST API (docs/protocol.md, "Hypervisor REST API"). Answers and
// errors have the admin API's form: 200 with JSON, or a status with
// {"error":{"code","message"}}.

// Access levels of a route.
type access int

const (
	anyone   access = iota // anyone
	loggedIn               // a logged-in session; a CSRF token on every method but GET
)

// Session cookie and lifetime.
const (
	cookieName = "skywire_session"
	sessionTTL = 12 * time.Hour
	csrfHeader = "X-CSRF-Token"
)

// handle registers fn at pattern ("METHOD /path") behind the given access.
func (h *Hypervisor) handle(pattern string, acc access, fn func(w http.ResponseWriter, r *http.Request, who *caller)) {
	h.patterns = append(h.patterns, pattern)
	method, _, _ := strings.Cut(pattern, " ")
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Cache-Control", "no-store")
		who := &caller{addr: clientAddr(r)}
		if acc == loggedIn {
			ss, name, ok := h.sessionOf(r)
			if !ok {
				writeError(w, admin.Errorf(admin.CodeUnauthorized, "not logged in (POST /api/login)"))
				return
			}
			if method != http.MethodGet && subtle.ConstantTimeCompare([]byte(r.Header.Get(csrfHeader)), []byte(ss.CSRF)) != 1 {
				writeError(w, &admin.Error{Code: "csrf", Message: "missing or wrong " + csrfHeader + " header (the token comes with the login answer and GET /api/session)"})
				return
			}
			who.session, who.csrf = name, ss.CSRF
		}
		fn(w, r, who)
	})
}

// caller is who made a request.
type caller struct {
	addr    string
	session string // short name of the session ("" if none)
	csrf    string
}

// clientAddr is the request's client IP.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func sessionCookie(r *http.Request) string {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// sessionOf returns r's session and its short name.
func (h *Hypervisor) sessionOf(r *http.Request) (session, string, bool) {
	tok := sessionCookie(r)
	if tok == "" {
		return session{}, "", false
	}
	id := sessionID(tok)
	ss, ok := h.store.getSession(id, time.Now())
	return ss, hex.EncodeToString(id[:4]), ok
}

// routes builds the mux.
func (h *Hypervisor) routes() {
	h.mux = http.NewServeMux()
	h.handle("GET /api/ping", anyone, h.ping)
	h.handle("POST /api/login", anyone, h.login)
	h.handle("POST /api/setup", anyone, h.setupPassword)
	h.handle("POST /api/logout", loggedIn, h.logout)
	h.handle("GET /api/session", loggedIn, h.sessionInfo)
	h.handle("POST /api/password", loggedIn, h.changePassword)
	h.handle("GET /api/visors", loggedIn, h.listVisors)
	h.handle("GET /api/visors/{pk}", loggedIn, h.getVisor)
	h.handle("DELETE /api/visors/{pk}", loggedIn, h.forgetVisor)
	h.handle("GET /api/visors/{pk}/traffic", loggedIn, h.traffic)
	h.handle("GET /api/labels", loggedIn, h.listLabels)
	h.handle("PUT /api/labels/{pk}", loggedIn, h.putLabel)
	h.handle("GET /api/audit", loggedIn, h.listAudit)
	h.handle("GET /api/events", loggedIn, func(w http.ResponseWriter, r *http.Request, _ *caller) { h.serveEvents(w, r) })
	h.handle("GET /api/admin-routes", loggedIn, func(w http.ResponseWriter, _ *http.Request, _ *caller) { writeJSON(w, admin.Routes()) })
	// Every operation of the visors' admin API, mounted unchanged.
	for _, rt := range admin.Routes() {
		h.handle(rt.Method+" /api/visors/{pk}"+rt.Path, loggedIn, h.proxy(rt))
	}
	h.handle("GET /pty/{pk}", loggedIn, h.terminal)
	h.handle("/api/", loggedIn, func(w http.ResponseWriter, r *http.Request, _ *caller) {
		writeError(w, admin.Errorf(admin.CodeNotFound, "no route %s %s", r.Method, r.URL.Path))
	})
	h.mux.Handle("/", uiHandler()) // GET and HEAD only: the file server refuses the rest
}

// Patterns lists every route the API serves, as "METHOD /path".
func (h *Hypervisor) Patterns() []string {
	return append([]string(nil), h.patterns...)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeRawJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func writeError(w http.ResponseWriter, e *admin.Error) {
	w.Header().Set("Content-Type", "application/json")
	status := e.Status()
	switch e.Code {
	case "csrf":
		status = http.StatusForbidden
	case "throttled":
		status = http.StatusTooManyRequests
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]*admin.Error{"error": e})
}

// decode reads a JSON body of at most 64 KiB into v.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, admin.Errorf(admin.CodeBadRequest, "%s %s: bad request body: %v", r.Method, r.URL.Path, err))
		return false
	}
	return true
}

// audit records an action.
func (h *Hypervisor) audit(who *caller, visor, action, detail string, status int, errMsg string) {
	e := &AuditEntry{Time: time.Now().UTC(), Session: who.session, Addr: who.addr, Visor: visor, Action: action, Detail: detail, Status: status, Error: errMsg}
	if err := h.store.addAudit(e); err != nil {
		h.log.Warn("writing the audit log", zap.Error(err))
		return
	}
	if js, err := json.Marshal(e); err == nil {
		h.hub.push("audit", js)
	}
}

// Ping is GET /api/ping's answer.
type Ping struct {
	OK          bool          `json:"ok"`
	Version     string        `json:"version"`
	PK          cipher.PubKey `json:"pk"`
	PasswordSet bool          `json:"password_set"` // false: set one with POST /api/setup
}

func (h *Hypervisor) ping(w http.ResponseWriter, _ *http.Request, _ *caller) {
	hash, err := h.store.passwordHash()
	if err != nil {
		writeError(w, admin.Errorf(admin.CodeInternal, "reading the database: %v", err))
		return
	}
	writeJSON(w, Ping{OK: true, Version: buildinfo.Get().Version, PK: h.cfg.PK, PasswordSet: hash != ""})
}

// SessionInfo is the answer to login, setup and GET /api/session.
type SessionInfo struct {
	CSRFToken string    `json:"csrf_token"`
	Expires   time.Time `json:"expires"`
}

// newSession logs the caller in: a cookie and a CSRF token.
func (h *Hypervisor) newSession(w http.ResponseWriter, who *caller) (SessionInfo, error) {
	tok := newToken(32)
	now := time.Now()
	ss := session{CSRF: newToken(32), Created: now.UTC(), Expires: now.Add(sessionTTL).UTC(), Addr: who.addr}
	if err := h.store.putSession(sessionID(tok), ss); err != nil {
		return SessionInfo{}, err
	}
	id := sessionID(tok)
	who.session = hex.EncodeToString(id[:4])
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: h.tls, MaxAge: int(sessionTTL / time.Second)})
	return SessionInfo{CSRFToken: ss.CSRF, Expires: ss.Expires}, nil
}

// throttled answers 429 if who must wait.
func (h *Hypervisor) throttled(w http.ResponseWriter, who *caller) bool {
	wait := h.thr.allow(who.addr, time.Now())
	if wait == 0 {
		return false
	}
	secs := int(wait.Round(time.Second) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	writeError(w, &admin.Error{Code: "throttled", Message: fmt.Sprintf("%v from %s: try again in %s", errThrottled, who.addr, wait.Round(time.Second))})
	return true
}

type loginRequest struct {
	Password string `json:"password"`
}

func (h *Hypervisor) login(w http.ResponseWriter, r *http.Request, who *caller) {
	var req loginRequest
	if h.throttled(w, who) || !decode(w, r, &req) {
		return
	}
	hash, err := h.store.passwordHash()
	switch {
	case err != nil:
		writeError(w, admin.Errorf(admin.CodeInternal, "reading the database: %v", err))
		return
	case hash == "":
		writeError(w, admin.Errorf(admin.CodeConflict, "no password is set yet: set one with the setup code the hypervisor printed (POST /api/setup), or `skywire hypervisor passwd`"))
		return
	case !verifyPassword(hash, req.Password):
		h.thr.fail(who.addr, time.Now())
		h.audit(who, "", "login", "", http.StatusUnauthorized, "wrong password")
		writeError(w, admin.Errorf(admin.CodeUnauthorized, "wrong password"))
		return
	}
	h.thr.succeed(who.addr)
	h.answerSession(w, who, "login")
}

// answerSession logs the caller in and answers the session, writing
// action to the audit log.
func (h *Hypervisor) answerSession(w http.ResponseWriter, who *caller, action string) {
	info, err := h.newSession(w, who)
	if err != nil {
		writeError(w, admin.Errorf(admin.CodeInternal, "saving the session: %v", err))
		return
	}
	h.audit(who, "", action, "", http.StatusOK, "")
	writeJSON(w, info)
}

type setupRequest struct {
	Code     string `json:"code"`
	Password string `json:"password"`
}

func (h *Hypervisor) setupPassword(w http.ResponseWriter, r *http.Request, who *caller) {
	var req setupRequest
	if h.throttled(w, who) || !decode(w, r, &req) {
		return
	}
	if err := CheckPassword(req.Password); err != nil {
		writeError(w, admin.Errorf(admin.CodeBadRequest, "%v", err))
		return
	}
	if hash, err := h.store.passwordHash(); err != nil || hash != "" {
		writeError(w, admin.Errorf(admin.CodeConflict, "a password is already set: log in, or reset it with `skywire hypervisor passwd`"))
		return
	}
	if !h.setup.take(req.Code) {
		h.thr.fail(who.addr, time.Now())
		h.audit(who, "", "setup", "", http.StatusUnauthorized, "wrong setup code")
		writeError(w, admin.Errorf(admin.CodeUnauthorized, "wrong setup code: use the one the hypervisor printed when it started"))
		return
	}
	if h.storePassword(w, req.Password) {
		h.thr.succeed(who.addr)
		h.answerSession(w, who, "setup: first password set")
	}
}

// storePassword stores pw's hash, ending every session; on failure it
// answers the error and reports false.
func (h *Hypervisor) storePassword(w http.ResponseWriter, pw string) bool {
	if err := h.store.setPasswordHash(hashPassword(pw)); err != nil {
		writeError(w, admin.Errorf(admin.CodeInternal, "saving the password: %v", err))
		return false
	}
	return true
}

func (h *Hypervisor) logout(w http.ResponseWriter, r *http.Request, who *caller) {
	h.store.deleteSession(sessionID(sessionCookie(r)))
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.tls, MaxAge: -1})
	h.audit(who, "", "logout", "", http.StatusOK, "")
	writeJSON(w, admin.Empty{})
}

func (h *Hypervisor) sessionInfo(w http.ResponseWriter, r *http.Request, who *caller) {
	ss, _, _ := h.sessionOf(r)
	writeJSON(w, SessionInfo{CSRFToken: ss.CSRF, Expires: ss.Expires})
}

type passwordRequest struct {
	Old string `json:"old_password"`
	New string `json:"new_password"`
}

func (h *Hypervisor) changePassword(w http.ResponseWriter, r *http.Request, who *caller) {
	var req passwordRequest
	if h.throttled(w, who) || !decode(w, r, &req) {
		return
	}
	if err := CheckPassword(req.New); err != nil {
		writeError(w, admin.Errorf(admin.CodeBadRequest, "new password: %v", err))
		return
	}
	hash, err := h.store.passwordHash()
	if err != nil || !verifyPassword(hash, req.Old) {
		h.thr.fail(who.addr, time.Now())
		h.audit(who, "", "change password", "", http.StatusUnauthorized, "wrong current password")
		writeError(w, admin.Errorf(admin.CodeUnauthorized, "the current password is wrong"))
		return
	}
	if h.storePassword(w, req.New) {
		h.answerSession(w, who, "change password (every other session ended)")
	}
}

func (h *Hypervisor) listVisors(w http.ResponseWriter, _ *http.Request, _ *caller) {
	writeRawJSON(w, joinJSON(h.cache.list()))
}

// pkOf parses the {pk} of a route.
func pkOf(w http.ResponseWriter, r *http.Request) (cipher.PubKey, bool) {
	var pk cipher.PubKey
	if err := pk.UnmarshalText([]byte(r.PathValue("pk"))); err != nil {
		writeError(w, admin.Errorf(admin.CodeBadRequest, "visor key %q: %v", r.PathValue("pk"), err))
		return pk, false
	}
	return pk, true
}

func (h *Hypervisor) getVisor(w http.ResponseWriter, r *http.Request, _ *caller) {
	pk, ok := pkOf(w, r)
	if !ok {
		return
	}
	js, ok := h.cache.get(pk)
	if !ok {
		writeError(w, admin.Errorf(admin.CodeNotFound, "no visor %s has linked to this hypervisor (does its config list %s in hypervisors?)", pk.Short(), h.cfg.PK))
		return
	}
	writeRawJSON(w, js)
}

func (h *Hypervisor) forgetVisor(w http.ResponseWriter, r *http.Request, who *caller) {
	pk, ok := pkOf(w, r)
	if !ok {
		return
	}
	if err := h.cache.forget(pk); err != nil {
		ae := asError(err)
		h.audit(who, pk.Hex(), "remove visor", "", ae.Status(), ae.Message)
		writeError(w, ae)
		return
	}
	h.audit(who, pk.Hex(), "remove visor", "", http.StatusOK, "")
	writeJSON(w, admin.Empty{})
}

func asError(err error) *admin.Error {
	var ae *admin.Error
	if errors.As(err, &ae) {
		return ae
	}
	return admin.Errorf(admin.CodeInternal, "%v", err)
}

func (h *Hypervisor) traffic(w http.ResponseWriter, r *http.Request, _ *caller) {
	pk, ok := pkOf(w, r)
	if !ok {
		return
	}
	t, ok := h.cache.trafficOf(pk)
	if !ok {
		writeError(w, admin.Errorf(admin.CodeNotFound, "no visor %s", pk.Short()))
		return
	}
	writeJSON(w, t)
}

func (h *Hypervisor) listLabels(w http.ResponseWriter, _ *http.Request, _ *caller) {
	writeJSON(w, h.cache.labelsCopy())
}

// MaxLabelLen bounds a label, in characters.
const MaxLabelLen = 64

type labelRequest struct {
	Label string `json:"label"`
}

func (h *Hypervisor) putLabel(w http.ResponseWriter, r *http.Request, who *caller) {
	pk, ok := pkOf(w, r)
	var req labelRequest
	if !ok || !decode(w, r, &req) {
		return
	}
	label := strings.TrimSpace(req.Label)
	if n := utf8.RuneCountInString(label); n > MaxLabelLen || strings.ContainsFunc(label, func(c rune) bool { return c < ' ' }) {
		writeError(w, admin.Errorf(admin.CodeBadRequest, "a label is at most %d characters on one line", MaxLabelLen))
		return
	}
	if err := h.cache.setLabel(pk, label); err != nil {
		writeError(w, admin.Errorf(admin.CodeInternal, "saving the label: %v", err))
		return
	}
	h.audit(who, pk.Hex(), "set label", strconv.Quote(label), http.StatusOK, "")
	writeJSON(w, labelRequest{Label: label})
}

func (h *Hypervisor) listAudit(w http.ResponseWriter, r *http.Request, _ *caller) {
	before, _ := strconv.ParseUint(r.URL.Query().Get("before"), 10, 64)
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if n <= 0 || n > 1000 {
		n = 200
	}
	es, err := h.store.audit(before, n)
	if err != nil {
		writeError(w, admin.Errorf(admin.CodeInternal, "reading the audit log: %v", err))
		return
	}
	writeJSON(w, es)
}

// maxAnswer bounds a visor's answer the hypervisor buffers.
const maxAnswer = 64 << 20

// proxy forwards one admin operation to the visor {pk} over its link, and
// records mutating ones in the audit log.
func (h *Hypervisor) proxy(rt admin.Route) func(w http.ResponseWriter, r *http.Request, who *caller) {
	action := rt.Method + " " + rt.Path
	return func(w http.ResponseWriter, r *http.Request, who *caller) {
		pk, ok := pkOf(w, r)
		if !ok {
			return
		}
		var body []byte
		if r.Method != http.MethodGet {
			var err error
			if body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, admin.MaxRequestBody)); err != nil {
				writeError(w, admin.Errorf(admin.CodeBadRequest, "%s: reading the request: %v", action, err))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		fail := func(e *admin.Error) {
			if !rt.Reads {
				h.audit(who, pk.Hex(), action, maskSecrets(body), e.Status(), e.Message)
			}
			writeError(w, e)
		}
		c := h.links.Client(pk)
		if c == nil {
			if seen, _ := h.cache.known(pk); seen {
				fail(admin.Errorf(admin.CodeUnavailable, "visor %s is offline", pk.Short()))
			} else {
				fail(admin.Errorf(admin.CodeNotFound, "no visor %s has linked to this hypervisor", pk.Short()))
			}
			return
		}
		hresp, err := c.Forward(r, rt.Path)
		if err != nil {
			if r.Context().Err() != nil {
				return // the browser left
			}
			fail(admin.Errorf(admin.CodeUnavailable, "visor %s: %v", pk.Short(), err))
			return
		}
		defer hresp.Body.Close()
		if rt.Stream && hresp.StatusCode == http.StatusOK {
			copyStream(w, hresp)
			return
		}
		data, err := io.ReadAll(io.LimitReader(hresp.Body, maxAnswer))
		if err != nil {
			fail(admin.Errorf(admin.CodeUnavailable, "visor %s: reading its answer: %v", pk.Short(), err))
			return
		}
		if !rt.Reads {
			msg := ""
			if hresp.StatusCode != http.StatusOK {
				msg = errorMessage(data)
			}
			h.audit(who, pk.Hex(), action, maskSecrets(body), hresp.StatusCode, msg)
		}
		w.Header().Set("Content-Type", hresp.Header.Get("Content-Type"))
		w.WriteHeader(hresp.StatusCode)
		w.Write(data)
	}
}

// copyStream passes a streaming answer through, line by line as it comes.
func copyStream(w http.ResponseWriter, hresp *http.Response) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", hresp.Header.Get("Content-Type"))
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := hresp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil || rc.Flush() != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// errorMessage is an admin error answer's message.
func errorMessage(data []byte) string {
	var eb struct {
		Error *admin.Error `json:"error"`
	}
	if json.Unmarshal(data, &eb) == nil && eb.Error != nil {
		return eb.Error.Message
	}
	return strings.TrimSpace(string(data))
}

// secretRE finds the values of JSON fields named like secrets.
var secretRE = regexp.MustCompile(`("[A-Za-z_]*(?:pass|secret|token|sk)[A-Za-z_]*"\s*:\s*)"(?:[^"\\]|\\.)*"`)

// maskSecrets is a request body for the audit log: secrets hidden, at
// most 512 bytes.
func maskSecrets(body []byte) string {
	s := secretRE.ReplaceAllString(string(body), `$1"********"`)
	if len(s) > 512 {
		s = s[:512] + "…"
	}
	return s
}
