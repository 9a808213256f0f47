package skychat

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/packets"
)

// loopNet is visors on loopback TCP for the chat's tests: a dial sends the
// dialler's key first, and each end's RemoteAddr is the other's "pk:port",
// as on a route.
type loopNet struct {
	mu    sync.Mutex
	addrs map[cipher.PubKey]string
}

type keyAddr string

func (keyAddr) Network() string  { return "skywire" }
func (a keyAddr) String() string { return string(a) }

type keyedConn struct {
	net.Conn
	r      *bufio.Reader
	remote keyAddr
}

func (c *keyedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *keyedConn) RemoteAddr() net.Addr       { return c.remote }

// dialer is one visor's Network.
type dialer struct {
	n    *loopNet
	self cipher.PubKey
}

func (d dialer) Dial(ctx context.Context, pk cipher.PubKey, port uint16) (net.Conn, error) {
	d.n.mu.Lock()
	addr := d.n.addrs[pk]
	d.n.mu.Unlock()
	if addr == "" || port != Port {
		return nil, fmt.Errorf("hop 1 refused: %s is not reachable", pk.Short())
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(c, d.self.Hex())
	return &keyedConn{Conn: c, r: bufio.NewReader(c), remote: keyAddr(pk.Hex() + ":1")}, nil
}

type keyedListener struct{ net.Listener }

func (l keyedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return l.Accept()
	}
	return &keyedConn{Conn: c, r: r, remote: keyAddr(strings.TrimSpace(line) + ":1")}, nil
}

// node is one visor's chat.
type node struct {
	pk   cipher.PubKey
	chat *Chat
	dir  string
	stop func()
}

func (n *loopNet) start(t *testing.T, pk cipher.PubKey, dir string) *node {
	t.Helper()
	c, err := New(dialer{n, pk}, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.addrs[pk] = ln.Addr().String()
	n.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Serve(ctx, keyedListener{ln}) }()
	nd := &node{pk: pk, chat: c, dir: dir}
	nd.stop = func() {
		cancel()
		<-done
		c.Close()
		n.mu.Lock()
		delete(n.addrs, pk)
		n.mu.Unlock()
	}
	return nd
}

// startPair starts two visors' chats, stopped when the test ends.
func startPair(t *testing.T) (n *loopNet, a, b *node) {
	t.Helper()
	n = &loopNet{addrs: map[cipher.PubKey]string{}}
	apk, _ := cipher.GenerateKeyPair()
	bpk, _ := cipher.GenerateKeyPair()
	a, b = n.start(t, apk, t.TempDir()), n.start(t, bpk, t.TempDir())
	t.Cleanup(b.stop)
	t.Cleanup(a.stop)
	return n, a, b
}

// waitState waits for message id of n's conversation with peer to reach
// state, and returns it.
func waitState(t *testing.T, n *node, peer cipher.PubKey, id, state string) Message {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, m := range n.chat.Messages(peer) {
			if m.ID == id && m.State == state {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s never %s: %+v", id, state, n.chat.Messages(peer))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A sends to B: B gets it pushed and A sees it delivered; B replies on the
// connection A dialled; the history survives a restart; a peer that is gone
// fails the message with the reason, and the next one is delivered after
// the redial once it is back; messages too long are refused at once.
func TestChat(t *testing.T) {
	n := &loopNet{addrs: map[cipher.PubKey]string{}}
	apk, _ := cipher.GenerateKeyPair()
	bpk, _ := cipher.GenerateKeyPair()
	a, b := n.start(t, apk, t.TempDir()), n.start(t, bpk, t.TempDir())
	defer func() { a.stop() }()
	feed, cancel := b.chat.Subscribe()
	defer cancel()
	m, err := a.chat.Send(bpk, "hello <script>alert(1)</script>")
	if err != nil || m.State != StateSending {
		t.Fatalf("send: %+v %v", m, err)
	}
	select {
	case got := <-feed:
		if got.Text != m.Text || got.Out || got.Peer != apk || got.State != StateReceived {
			t.Fatalf("B was pushed %+v", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("B was pushed nothing")
	}
	waitState(t, a, bpk, m.ID, StateDelivered)
	r, err := b.chat.Send(apk, "hi back")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, b, apk, r.ID, StateDelivered)
	if got := a.chat.Messages(bpk); len(got) != 2 || got[1].Text != "hi back" || got[1].State != StateReceived {
		t.Fatalf("A's conversation: %+v", got)
	}
	if err := a.chat.SetLabel(bpk, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.chat.Send(bpk, strings.Repeat("x", MaxText+1)); err == nil {
		t.Fatal("a message over MaxText was sent")
	}

	// B restarts (its history kept): A's next message fails while B is
	// gone, and the one after is delivered over a new connection.
	bdir := b.dir
	b.stop()
	down, _ := a.chat.Send(bpk, "are you there?")
	failed := waitState(t, a, bpk, down.ID, StateFailed)
	if !strings.Contains(failed.Error, "no route to") {
		t.Fatalf("failed for %q", failed.Error)
	}
	b = n.start(t, bpk, bdir)
	defer b.stop()
	if got := b.chat.Messages(apk); len(got) != 2 || got[0].Text != m.Text || got[1].State != StateDelivered {
		t.Fatalf("B's history after a restart: %+v", got)
	}
	back, _ := a.chat.Send(bpk, "welcome back")
	waitState(t, a, bpk, back.ID, StateDelivered)

	// A restarts: its conversations, states and labels are kept.
	adir := a.dir
	a.stop()
	a = n.start(t, apk, adir)
	convs := a.chat.Conversations()
	if len(convs) != 1 || convs[0].Label != "bob" || convs[0].Messages != 4 || convs[0].Last.Text != "welcome back" || convs[0].Last.State != StateDelivered {
		t.Fatalf("A's conversations after a restart: %+v", convs)
	}
}

// A burst beyond the rate is refused with a reason, not dropped silently;
// what a peer sends beyond the size limit is refused, and an oversized
// frame closes its connection.
func TestChatLimits(t *testing.T) {
	n, a, b := startPair(t)
	apk, bpk := a.pk, b.pk
	var ids []string
	for i := range 6 * DefaultRate {
		m, err := a.chat.Send(bpk, fmt.Sprintf("burst %d", i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	refused, delivered := 0, 0
	deadline := time.Now().Add(30 * time.Second)
	for refused+delivered < len(ids) && time.Now().Before(deadline) {
		refused, delivered = 0, 0
		for _, m := range a.chat.Messages(bpk) {
			switch {
			case m.State == StateDelivered:
				delivered++
			case m.State == StateFailed && strings.Contains(m.Error, "too many messages too fast"):
				refused++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refused == 0 || delivered < 2*DefaultRate || refused+delivered != len(ids) {
		t.Fatalf("%d delivered, %d refused of %d", delivered, refused, len(ids))
	}

	// A peer that ignores the limits: a long message is refused; an
	// oversized frame ends the connection.
	c, err := dialer{n, apk}.Dial(context.Background(), bpk, Port)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(2 * time.Second) // the rate refills
	big := fmt.Sprintf(`{"id":"x1","text":%q}`, strings.Repeat("y", MaxText+1))
	packets.WriteFrame(c, kindMessage, []byte(big))
	kind, body, err := packets.ReadNewFrame(c)
	if err != nil || kind != kindRefused || !strings.Contains(string(body), "4096 bytes") {
		t.Fatalf("a long message: kind %d %s %v", kind, body, err)
	}
	packets.WriteFrame(c, kindMessage, make([]byte, 64<<10))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := packets.ReadNewFrame(c); err == nil {
		t.Fatal("the connection survived an oversized frame")
	}
}

// A page follows the feed: the last state it is pushed for a message must be
// the one kept, even when the acknowledgement races the "sent" of the write
// that carried the message (the page once showed "sent" for a delivered
// message because the two changes were published in the other order).
func TestFeedEndsOnTheKeptState(t *testing.T) {
	_, a, b := startPair(t)
	bpk := b.pk
	b.chat.SetRate(1000)
	feed, cancel := a.chat.Subscribe()
	defer cancel()
	last := map[string]string{}
	const total = 300
	for i := range total {
		if _, err := a.chat.Send(bpk, fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 { // stay within the feed's buffer
			for done := 0; done < 10; {
				select {
				case m, ok := <-feed:
					if !ok {
						t.Fatal("the feed was cut off")
					}
					if last[m.ID] != StateDelivered && m.State == StateDelivered {
						done++
					}
					last[m.ID] = m.State
				case <-time.After(20 * time.Second):
					t.Fatalf("%d messages: no delivery for 20 s", i+1)
				}
			}
		}
	}
	drain := time.After(200 * time.Millisecond)
	for draining := true; draining; {
		select {
		case m := <-feed:
			last[m.ID] = m.State
		case <-drain:
			draining = false
		}
	}
	wrong := 0
	for _, m := range a.chat.Messages(bpk) {
		if last[m.ID] != m.State {
			wrong++
			t.Errorf("message %s: kept %s, last pushed %s", m.Text, m.State, last[m.ID])
		}
	}
	if len(last) != total || wrong > 0 {
		t.Fatalf("%d of %d messages pushed, %d ended on another state than the kept one", len(last), total, wrong)
	}
}
