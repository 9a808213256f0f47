package hypervisor

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// GET /api/events is a server-sent event stream (text/event-stream). It
// begins with
//
//	event: snapshot    data: [every visor's state]
//
// then pushes every change:
//
//	event: visor          data: one visor's whole state
//	event: visor-removed  data: {"pk": …}
//	event: audit          data: a new audit entry
//	event: logout         data: {}   (the session ended; the stream closes)
//
// A browser that cannot keep up is dropped; EventSource reconnects and
// gets a fresh snapshot.

// subBuffer is how many events a subscriber may lag behind.
const subBuffer = 1024

// heartbeatEvery keeps proxies from closing an idle stream, and checks the
// session is still there.
const heartbeatEvery = 15 * time.Second

type hub struct {
	mu   sync.Mutex
	subs map[*sub]struct{}
}

type sub struct {
	ch   chan []byte // framed events
	gone chan struct{}
	once sync.Once
}

func (s *sub) drop() { s.once.Do(func() { close(s.gone) }) }

func newHub() *hub { return &hub{subs: map[*sub]struct{}{}} }

// frame is one SSE message.
func frame(kind string, data []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(data) + len(kind) + 16)
	fmt.Fprintf(&b, "event: %s\ndata: ", kind)
	b.Write(data) // JSON has no raw newlines
	b.WriteString("\n\n")
	return b.Bytes()
}

// push sends an event to every subscriber, dropping those that lag.
func (h *hub) push(kind string, data []byte) {
	f := frame(kind, data)
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- f:
		default:
			delete(h.subs, s)
			s.drop()
		}
	}
}

func (h *hub) subscribe() *sub {
	s := &sub{ch: make(chan []byte, subBuffer), gone: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.drop()
}

// serveEvents is GET /api/events.
func (h *Hypervisor) serveEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	s := h.hub.subscribe() // before the snapshot: nothing is missed between
	defer h.hub.unsubscribe(s)
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("retry: 2000\n\n"))
	w.Write(frame("snapshot", joinJSON(h.cache.list())))
	if rc.Flush() != nil {
		return
	}
	token := sessionCookie(r)
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.gone:
			return
		case f := <-s.ch:
			w.Write(f)
			// Send what else is queued in the same write.
			for n := len(s.ch); n > 0; n-- {
				w.Write(<-s.ch)
			}
			if rc.Flush() != nil {
				return
			}
		case <-t.C:
			if _, ok := h.store.getSession(sessionID(token), time.Now()); !ok {
				w.Write(frame("logout", []byte("{}")))
				rc.Flush()
				return
			}
			w.Write([]byte(": keepalive\n\n"))
			if rc.Flush() != nil {
				return
			}
		}
	}
}

// joinJSON makes a JSON array of already encoded values.
func joinJSON(items [][]byte) []byte {
	n := 2
	for _, it := range items {
		n += len(it) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, it...)
	}
	return append(b, ']')
}
