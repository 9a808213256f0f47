package skychat

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/skyfleet/skywire/cipher"
)

// The history is one append-only file of JSON lines, each a new message
// ({"m": …}) or a state change ({"u": …}), replayed and compacted (the
// last keepPerPeer messages of each conversation rewritten) at start; the
// labels are a JSON file of their own, replaced whole.
const (
	historyFile = "history.jsonl"
	labelsFile  = "labels.json"
	maxLine     = 64 << 10
)

// errDuplicate: a message already kept (a peer sent it again).
var errDuplicate = errors.New("a message already kept")

// Conversation is one peer's, as listed.
type Conversation struct {
	Peer     cipher.PubKey `json:"peer"`
	Label    string        `json:"label,omitempty"`
	Last     *Message      `json:"last,omitempty"`
	Messages int           `json:"messages"`
}

type update struct {
	Peer  cipher.PubKey `json:"peer"`
	ID    string        `json:"id"`
	State string        `json:"state"`
	Error string        `json:"error,omitempty"`
}

type record struct {
	M *Message `json:"m,omitempty"`
	U *update  `json:"u,omitempty"`
}

type history struct {
	dir  string
	keep int

	mu     sync.Mutex // guards all below
	f      *os.File
	convs  map[cipher.PubKey][]Message
	labels map[cipher.PubKey]string
}

func openHistory(dir string, keep int) (*history, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("skychat history: %w", err)
	}
	h := &history{dir: dir, keep: keep, convs: map[cipher.PubKey][]Message{}, labels: map[cipher.PubKey]string{}}
	if b, err := os.ReadFile(filepath.Join(dir, labelsFile)); err == nil {
		json.Unmarshal(b, &h.labels)
	}
	path := filepath.Join(dir, historyFile)
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 4096), maxLine)
		for sc.Scan() {
			var r record
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue // a line cut by a crash
			}
			switch {
			case r.M != nil:
				h.addLocked(*r.M)
			case r.U != nil:
				h.updateLocked(r.U.Peer, r.U.ID, r.U.State, r.U.Error)
			}
		}
		f.Close()
	}
	// Compact: what is kept, one line each, in place of the old file.
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("skychat history: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, msgs := range h.convs {
		for i := range msgs {
			b, _ := json.Marshal(record{M: &msgs[i]})
			w.Write(append(b, '\n'))
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("skychat history: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("skychat history: %w", err)
	}
	if h.f, err = os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0o600); err != nil {
		return nil, fmt.Errorf("skychat history: %w", err)
	}
	return h, nil
}

func (h *history) close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.f.Close()
}

func (h *history) write(r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = h.f.Write(append(b, '\n'))
	return err
}

func (h *history) addLocked(m Message) bool {
	msgs := h.convs[m.Peer]
	if slices.ContainsFunc(msgs, func(o Message) bool { return o.ID == m.ID }) {
		return false
	}
	msgs = append(msgs, m)
	if len(msgs) > h.keep {
		msgs = slices.Delete(msgs, 0, len(msgs)-h.keep)
	}
	h.convs[m.Peer] = msgs
	return true
}

// add keeps a new message.
func (h *history) add(m Message) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.addLocked(m) {
		return errDuplicate
	}
	return h.write(record{M: &m})
}

// rank orders the states of a sent message: a late "sent" never hides
// "delivered".
var rank = map[string]int{StateSending: 0, StateSent: 1, StateDelivered: 2, StateFailed: 2}

func (h *history) updateLocked(pk cipher.PubKey, id, state, reason string) (Message, bool) {
	msgs := h.convs[pk]
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].ID == id {
			if rank[state] < rank[msgs[i].State] {
				return Message{}, false
			}
			msgs[i].State, msgs[i].Error = state, reason
			return msgs[i], true
		}
	}
	return Message{}, false
}

// update changes a kept message's state.
func (h *history) update(pk cipher.PubKey, id, state, reason string) (Message, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m, ok := h.updateLocked(pk, id, state, reason)
	if ok {
		h.write(record{U: &update{Peer: pk, ID: id, State: state, Error: reason}})
	}
	return m, ok
}

func (h *history) messages(pk cipher.PubKey) []Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.convs[pk])
}

func (h *history) conversations() []Conversation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Conversation
	seen := map[cipher.PubKey]bool{}
	for pk, msgs := range h.convs {
		c := Conversation{Peer: pk, Label: h.labels[pk], Messages: len(msgs)}
		if len(msgs) > 0 {
			last := msgs[len(msgs)-1]
			c.Last = &last
		}
		out = append(out, c)
		seen[pk] = true
	}
	for pk, l := range h.labels { // a labelled peer with no messages yet
		if !seen[pk] {
			out = append(out, Conversation{Peer: pk, Label: l})
		}
	}
	slices.SortFunc(out, func(a, b Conversation) int {
		switch {
		case a.Last != nil && b.Last != nil:
			return b.Last.Time.Compare(a.Last.Time)
		case a.Last != nil:
			return -1
		case b.Last != nil:
			return 1
		}
		return strings.Compare(a.Peer.Hex(), b.Peer.Hex()) // a stable order for the unmessaged
	})
	return out
}

func (h *history) setLabel(pk cipher.PubKey, label string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if label == "" {
		delete(h.labels, pk)
	} else {
		h.labels[pk] = label
	}
	b, _ := json.MarshalIndent(h.labels, "", "  ")
	tmp := filepath.Join(h.dir, labelsFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(h.dir, labelsFile))
}

// feeds fan new messages and changes out to subscribers. One that falls
// behind is cut off (its channel closed): a page reloads and catches up.
type feeds struct {
	mu   sync.Mutex
	subs map[chan Message]struct{}
	done bool
}

const feedBuffer = 256

func (f *feeds) subscribe() (<-chan Message, func()) {
	ch := make(chan Message, feedBuffer)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		close(ch)
		return ch, func() {}
	}
	if f.subs == nil {
		f.subs = map[chan Message]struct{}{}
	}
	f.subs[ch] = struct{}{}
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *feeds) publish(m Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- m:
		default:
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *feeds) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	for ch := range f.subs {
		close(ch)
	}
	f.subs = nil
}
