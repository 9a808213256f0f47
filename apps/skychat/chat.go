// Package skychat is the chat between visors: conversations by peer key,
// messages framed on one route connection per peer (dialled when first
// needed, redialled after a failure), a delivery state per message, and a
// history kept on disk. The web UI (ui.go) shows it; docs/protocol.md
// ("skychat") documents the wire.
//
// On the connection every frame is internal/packets' (u32 length | u8 kind
// | body) with a JSON body: kind 1 a message {"id","ts","text"}, 2 its
// acknowledgement {"id"}, 3 a refusal {"id","reason"} (too long, too many
// too fast). Either end may send messages on a connection the other
// dialled.
package skychat

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/packets"
)

// Port is skychat's app port, as in Skywire.
const Port = 1

// Limits.
const (
	MaxText     = 4096             // bytes of one message
	maxFrame    = MaxText + 512    // a message frame's JSON
	DefaultRate = 10               // messages a second a peer may send (after a burst of twice as many)
	keepPerPeer = 1000             // messages of a conversation kept (in memory and on disk)
	dialTimeout = 20 * time.Second // a route to a peer
	ackTimeout  = 15 * time.Second // a sent message not acknowledged by then is failed
	writeWait   = 10 * time.Second
)

// Frame kinds.
const (
	kindMessage byte = 1
	kindAck     byte = 2
	kindRefused byte = 3
)

// Delivery states.
const (
	StateSending   = "sending"
	StateSent      = "sent"
	StateDelivered = "delivered"
	StateFailed    = "failed"
	StateReceived  = "received"
)

// Message is one message of a conversation.
type Message struct {
	ID    string        `json:"id"`
	Peer  cipher.PubKey `json:"peer"`
	Out   bool          `json:"out"` // sent by this visor
	Text  string        `json:"text"`
	Time  time.Time     `json:"time"`
	State string        `json:"state"`
	Error string        `json:"error,omitempty"` // why it failed
}

// wire is a frame's body.
type wire struct {
	ID     string `json:"id"`
	TS     int64  `json:"ts,omitempty"` // unix ms
	Text   string `json:"text,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Network is how the chat reaches peers: the app SDK's Dial.
type Network interface {
	Dial(ctx context.Context, pk cipher.PubKey, port uint16) (net.Conn, error)
}

// Chat is one visor's chat.
type Chat struct {
	net   Network
	hist  *history
	log   *zap.Logger
	feeds feeds
	// order makes a state change and its publication one step: two changes
	// of a message are pushed in the order they were kept, so a page never
	// ends on "sent" for a message kept as "delivered".
	order sync.Mutex

	mu    sync.Mutex // guards peers, rate
	peers map[cipher.PubKey]*peer
	rate  int // messages a second a peer may send
}

// peer is the link to one peer: at most one connection in use.
type peer struct {
	pk cipher.PubKey

	dialMu sync.Mutex // one dial at a time

	mu      sync.Mutex // guards conn, w, pending, tokens, refill
	conn    net.Conn
	w       *packets.Writer
	pending map[string]*pending // sent, not yet acknowledged
	rate    int                 // messages a second it may send
	tokens  int
	refill  time.Time
}

// New opens the chat with its history in dir.
func New(n Network, dir string, log *zap.Logger) (*Chat, error) {
	if log == nil {
		log = zap.NewNop()
	}
	h, err := openHistory(dir, keepPerPeer)
	if err != nil {
		return nil, err
	}
	return &Chat{net: n, hist: h, log: log, peers: map[cipher.PubKey]*peer{}, rate: DefaultRate}, nil
}

// SetRate sets how many messages a second each peer may send (after a
// burst of twice as many); more are refused. Peers already met keep theirs.
func (c *Chat) SetRate(perSecond int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rate = max(perSecond, 1)
}

// Close closes every connection and the history.
func (c *Chat) Close() error {
	c.mu.Lock()
	peers := c.peers
	c.peers = map[cipher.PubKey]*peer{}
	c.mu.Unlock()
	for _, p := range peers {
		p.mu.Lock()
		if p.conn != nil {
			p.conn.Close()
		}
		p.mu.Unlock()
	}
	c.feeds.close()
	return c.hist.close()
}

func (c *Chat) peer(pk cipher.PubKey) *peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.peers[pk]
	if p == nil {
		p = &peer{pk: pk, pending: map[string]*pending{}, rate: c.rate, tokens: 2 * c.rate}
		c.peers[pk] = p
	}
	return p
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// pending is a sent message waiting for its acknowledgement.
type pending struct {
	m       Message
	w       *packets.Writer // the connection it went on
	timer   *time.Timer
	retried bool
}

// Send sends text to pk: the message is stored as sending and returned at
// once; its state changes (sent, delivered, or failed with the reason) are
// published as they happen.
func (c *Chat) Send(pk cipher.PubKey, text string) (Message, error) {
	switch {
	case pk.Check() != nil:
		return Message{}, fmt.Errorf("not a visor key: %w", pk.Check())
	case text == "":
		return Message{}, errors.New("an empty message")
	case len(text) > MaxText:
		return Message{}, fmt.Errorf("a message of %d bytes: at most %d", len(text), MaxText)
	case !utf8.ValidString(text):
		return Message{}, errors.New("a message must be UTF-8 text")
	}
	m := Message{ID: newID(), Peer: pk, Out: true, Text: text, Time: time.Now().UTC().Truncate(time.Millisecond), State: StateSending}
	if err := c.hist.add(m); err != nil {
		return Message{}, err
	}
	c.feeds.publish(m)
	go c.deliver(m, false)
	return m, nil
}

// deliver writes m to its peer's connection, dialling it if there is none
// and once more if the one there fails. A message whose connection closes
// before its acknowledgement is delivered again once (retried): the
// receiver keeps a message once, and acknowledges it again.
func (c *Chat) deliver(m Message, retried bool) {
	p := c.peer(m.Peer)
	body, _ := json.Marshal(wire{ID: m.ID, TS: m.Time.UnixMilli(), Text: m.Text})
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var w *packets.Writer
		if w, err = c.connect(p); err != nil {
			break
		}
		p.mu.Lock()
		p.pending[m.ID] = &pending{m: m, w: w, retried: retried, timer: time.AfterFunc(ackTimeout, func() {
			if c.settle(p, m.ID) {
				c.setState(m.Peer, m.ID, StateFailed, fmt.Sprintf("no acknowledgement from %s within %v", m.Peer.Short(), ackTimeout))
			}
		})}
		p.mu.Unlock()
		if err = w.Write(kindMessage, body); err == nil {
			c.setState(m.Peer, m.ID, StateSent, "")
			return
		}
		c.settle(p, m.ID)
		c.drop(p, w)
	}
	c.setState(m.Peer, m.ID, StateFailed, err.Error())
}

// connect returns the peer's connection's writer, dialling a route if it
// has none.
func (c *Chat) connect(p *peer) (*packets.Writer, error) {
	p.dialMu.Lock()
	defer p.dialMu.Unlock()
	p.mu.Lock()
	w := p.w
	p.mu.Unlock()
	if w != nil {
		return w, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, err := c.net.Dial(ctx, p.pk, Port)
	if err != nil {
		return nil, fmt.Errorf("no route to %s: %w", p.pk.Short(), err)
	}
	return c.attach(p, conn), nil
}

// attach makes conn the peer's connection and reads it.
func (c *Chat) attach(p *peer, conn net.Conn) *packets.Writer {
	w := &packets.Writer{W: deadlineWriter{conn}}
	p.mu.Lock()
	old := p.conn
	p.conn, p.w = conn, w
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go c.read(p, conn, w)
	return w
}

// drop forgets the connection of w if it is still the peer's, and sends
// again what went on it unacknowledged.
func (c *Chat) drop(p *peer, w *packets.Writer) {
	p.mu.Lock()
	if p.w == w {
		p.conn.Close()
		p.conn, p.w = nil, nil
	}
	var again []*pending
	for id, pm := range p.pending {
		if pm.w == w {
			pm.timer.Stop()
			delete(p.pending, id)
			again = append(again, pm)
		}
	}
	p.mu.Unlock()
	for _, pm := range again {
		if pm.retried {
			c.setState(p.pk, pm.m.ID, StateFailed, fmt.Sprintf("the connection to %s closed before it acknowledged the message", p.pk.Short()))
			continue
		}
		go c.deliver(pm.m, true)
	}
}

// settle stops waiting for id's acknowledgement; false if it was not
// waited for.
func (c *Chat) settle(p *peer, id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pm := p.pending[id]
	if pm == nil {
		return false
	}
	pm.timer.Stop()
	delete(p.pending, id)
	return true
}

// allow takes a token of the peer's rate.
func (p *peer) allow(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	every := time.Second / time.Duration(p.rate)
	if n := int(now.Sub(p.refill) / every); n > 0 {
		p.tokens = min(2*p.rate, p.tokens+n)
		p.refill = now
	}
	if p.tokens == 0 {
		return false
	}
	p.tokens--
	return true
}

// read handles what the peer sends on conn until it fails.
func (c *Chat) read(p *peer, conn net.Conn, w *packets.Writer) {
	defer c.drop(p, w)
	for {
		kind, body, err := packets.ReadNewFrame(conn)
		if err != nil {
			return
		}
		if len(body) > maxFrame {
			c.log.Info("a peer sent an oversized frame", zap.String("peer", p.pk.Hex()), zap.Int("bytes", len(body)))
			return
		}
		var f wire
		if json.Unmarshal(body, &f) != nil || f.ID == "" || len(f.ID) > 64 {
			return
		}
		switch kind {
		case kindMessage:
			reason := ""
			switch {
			case len(f.Text) > MaxText || !utf8.ValidString(f.Text) || f.Text == "":
				reason = fmt.Sprintf("refused: a message must be 1 to %d bytes of UTF-8 text", MaxText)
			case !p.allow(time.Now()):
				reason = fmt.Sprintf("refused: too many messages too fast (at most %d a second); send again in a moment", p.rate)
			}
			if reason != "" {
				body, _ := json.Marshal(wire{ID: f.ID, Reason: reason})
				w.Write(kindRefused, body)
				continue
			}
			m := Message{ID: f.ID, Peer: p.pk, Text: f.Text, Time: time.Now().UTC().Truncate(time.Millisecond), State: StateReceived}
			if c.hist.add(m) == nil {
				c.feeds.publish(m)
			}
			ack, _ := json.Marshal(wire{ID: f.ID})
			w.Write(kindAck, ack)
		case kindAck:
			if c.settle(p, f.ID) {
				c.setState(p.pk, f.ID, StateDelivered, "")
			}
		case kindRefused:
			if c.settle(p, f.ID) {
				c.setState(p.pk, f.ID, StateFailed, f.Reason)
			}
		}
	}
}

// setState changes a sent message's state and publishes it.
func (c *Chat) setState(pk cipher.PubKey, id, state, reason string) {
	c.order.Lock()
	defer c.order.Unlock()
	if m, ok := c.hist.update(pk, id, state, reason); ok {
		c.feeds.publish(m)
	}
}

// Serve takes the connections peers dial to this chat until l closes.
func (c *Chat) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		pk, err := remotePK(conn)
		if err != nil {
			conn.Close()
			continue
		}
		c.attach(c.peer(pk), conn)
	}
}

// remotePK is the key of the visor at the far end of an app connection
// (its address is "pk:port").
func remotePK(conn net.Conn) (cipher.PubKey, error) {
	a := conn.RemoteAddr()
	if a == nil {
		return cipher.PubKey{}, errors.New("no remote address")
	}
	pk, _, _ := strings.Cut(a.String(), ":")
	return cipher.ParsePubKey(pk)
}

// Conversations are the peers with messages, newest first.
func (c *Chat) Conversations() []Conversation { return c.hist.conversations() }

// Messages are the kept messages with pk, oldest first.
func (c *Chat) Messages(pk cipher.PubKey) []Message { return c.hist.messages(pk) }

// SetLabel names a peer ("" removes the name).
func (c *Chat) SetLabel(pk cipher.PubKey, label string) error {
	if len(label) > 64 || !utf8.ValidString(label) {
		return errors.New("a label is at most 64 bytes of UTF-8 text")
	}
	return c.hist.setLabel(pk, label)
}

// Subscribe returns a feed of every new message and state change, until
// cancel.
func (c *Chat) Subscribe() (<-chan Message, func()) { return c.feeds.subscribe() }

// deadlineWriter bounds each write: a peer that stops reading fails the
// message instead of holding it.
type deadlineWriter struct{ c net.Conn }

func (d deadlineWriter) Write(p []byte) (int, error) {
	d.c.SetWriteDeadline(time.Now().Add(writeWait))
	return d.c.Write(p)
}
