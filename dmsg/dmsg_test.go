package dmsg

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/nettest"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
	"github.com/skyfleet/skywire/svc/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a dmsg network in this process: a discovery and servers on
// loopback, and clients.
type env struct {
	t    testing.TB
	disc string
	dd   *dmsgdisc.Server
}

func newEnv(t testing.TB) *env {
	dd := dmsgdisc.NewServer(store.NewMemory(10000), nil)
	hs := httptest.NewServer(dd)
	t.Cleanup(hs.Close)
	return &env{t: t, disc: hs.URL, dd: dd}
}

type runningServer struct {
	*Server
	stop func()
}

func (e *env) server(cfg ServerConfig) *runningServer {
	e.t.Helper()
	pk, sk := cipher.GenerateKeyPair()
	cfg.SK, cfg.Discovery = sk, e.disc
	e.dd.TrustServers(pk)
	s, err := NewServer(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	once := sync.Once{}
	rs := &runningServer{Server: s, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				e.t.Errorf("server: %v", err)
			}
		})
	}}
	e.t.Cleanup(rs.stop)
	// Published before clients look for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, _ := dmsgdisc.NewClient(e.disc, sk).Servers(context.Background())
		for _, se := range list {
			if se.PK == s.PK() {
				return rs
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatal("server never published")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) client(sessions int) *Client {
	e.t.Helper()
	_, sk := cipher.GenerateKeyPair()
	c, err := NewClient(ClientConfig{SK: sk, Discovery: e.disc, SessionsCount: sessions})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("client: %v", err)
		}
	})
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		e.t.Fatal("client never ready")
	}
	return c
}

// pair dials b:port from a and returns both ends.
func pair(t testing.TB, a, b *Client, port uint16) (*Stream, *Stream) {
	t.Helper()
	l, err := b.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan *Stream, 1)
	go func() {
		s, _ := l.AcceptStream()
		ch <- s
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := a.Dial(ctx, b.PK(), port)
	if err != nil {
		t.Fatal(err)
	}
	sb := <-ch
	if sb == nil {
		t.Fatal("accept failed")
	}
	return sa, sb
}

func TestStream(t *testing.T) {
	e := newEnv(t)
	e.server(ServerConfig{})
	a, b := e.client(1), e.client(1)
	sa, sb := pair(t, a, b, 45)
	defer sa.Close()
	defer sb.Close()
	if sa.RemoteAddr().String() != b.PK().Hex()+":45" || sb.RemoteAddr() != sa.LocalAddr() {
		t.Fatalf("addresses: %v %v %v", sa.RemoteAddr(), sb.RemoteAddr(), sa.LocalAddr())
	}
	if sa.RemotePK() != b.PK() || sb.RemotePK() != a.PK() {
		t.Fatal("end-to-end keys are not the clients'")
	}
	data := make([]byte, 8<<20)
	rand.Read(data)
	go func() {
		sa.Write(data)
		sa.Close()
	}()
	got, err := io.ReadAll(sb)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("transfer: %d bytes, %v", len(got), err)
	}
}

func TestStreamNettest(t *testing.T) {
	e := newEnv(t)
	e.server(ServerConfig{})
	a, b := e.client(1), e.client(1)
	port := uint16(100)
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		port++
		sa, sb := pair(t, a, b, port)
		return sa, sb, func() { sa.Close(); sb.Close() }, nil
	})
}

func TestDialErrors(t *testing.T) {
	e := newEnv(t)
	e.server(ServerConfig{})
	a, b := e.client(1), e.client(1)
	ctx := context.Background()

	_, err := a.Dial(ctx, b.PK(), 7)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusNoListener || se.By != "destination" {
		t.Fatalf("no listener: %v", err)
	}
	nobody, _ := cipher.GenerateKeyPair()
	if _, err := a.Dial(ctx, nobody, 7); !errors.Is(err, dmsgdisc.ErrNotFound) {
		t.Fatalf("unknown key: %v", err)
	}
	if _, err := a.Dial(ctx, a.PK(), 7); err == nil {
		t.Fatal("dialled itself")
	}
	l, _ := b.Listen(8)
	if _, err := b.Listen(8); err == nil {
		t.Fatal("port taken twice")
	}
	l.Close()
	if _, err := b.Listen(8); err != nil {
		t.Fatalf("port not freed by Close: %v", err)
	}
}

// rawRequest sends body on a fresh stream of c's session and returns the
// answer.
func rawRequest(t *testing.T, c *Client, body []byte) (Status, byte) {
	t.Helper()
	s := c.session(c.Servers()[0])
	ys, err := s.ymx.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer ys.Close()
	ys.SetDeadline(time.Now().Add(5 * time.Second))
	noise.WriteMsg(ys, body)
	resp, err := noise.ReadMsg(ys, maxResponse)
	if err != nil {
		t.Fatal(err)
	}
	st, origin, _, err := parseResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	return st, origin
}

func TestRequestChecks(t *testing.T) {
	e := newEnv(t)
	e.server(ServerConfig{})
	a, b := e.client(1), e.client(1)
	l, _ := b.Listen(45)
	defer l.Close()
	go func() {
		for {
			s, err := l.AcceptStream()
			if err != nil {
				return
			}
			s.Close()
		}
	}()
	h, _ := newKKInitiator(a, b.PK())
	msg1, _ := h.WriteMessage(nil)
	req := &request{Src: Addr{a.PK(), 50000}, Dst: Addr{b.PK(), 45}, Time: time.Now(), Nonce: newNonce(), Noise: msg1}
	good, _ := encodeRequest(req, a.cfg.SK)
	if st, _ := rawRequest(t, a, good); st != StatusOK {
		t.Fatalf("good request: %v", st)
	}
	if st, origin := rawRequest(t, a, good); st != StatusRefused || origin != originServer {
		t.Fatalf("replayed request: %v from %d", st, origin)
	}

	_, other := cipher.GenerateKeyPair()
	forged := *req
	forged.Nonce = newNonce()
	forged.Src.PK = other.PubKey()
	raw, _ := encodeRequest(&forged, other) // valid signature, but not the session's key
	if st, _ := rawRequest(t, a, raw); st != StatusRefused {
		t.Fatalf("src is not the session: %v", st)
	}
	stale := *req
	stale.Nonce, stale.Time = newNonce(), time.Now().Add(-time.Hour)
	raw, _ = encodeRequest(&stale, a.cfg.SK)
	if st, _ := rawRequest(t, a, raw); st != StatusRefused {
		t.Fatalf("stale: %v", st)
	}
	tampered := *req
	tampered.Nonce = newNonce()
	raw, _ = encodeRequest(&tampered, a.cfg.SK)
	raw[70] ^= 1 // dst port, under the signature
	if st, _ := rawRequest(t, a, raw); st != StatusRefused {
		t.Fatalf("tampered: %v", st)
	}
	nobody, _ := cipher.GenerateKeyPair()
	lost := *req
	lost.Nonce, lost.Dst.PK = newNonce(), nobody
	raw, _ = encodeRequest(&lost, a.cfg.SK)
	if st, origin := rawRequest(t, a, raw); st != StatusNoSession || origin != originServer {
		t.Fatalf("no session: %v", st)
	}
}

func TestStreamLimit(t *testing.T) {
	e := newEnv(t)
	e.server(ServerConfig{MaxStreamsPerSession: 2})
	a, b := e.client(1), e.client(1)
	l, _ := b.Listen(45)
	defer l.Close()
	var held []*Stream
	defer func() {
		for _, s := range held {
			s.Close()
		}
	}()
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		s, err := a.Dial(ctx, b.PK(), 45)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, s)
		r, _ := l.AcceptStream()
		held = append(held, r)
	}
	_, err := a.Dial(ctx, b.PK(), 45)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusBusy || se.By != "server" {
		t.Fatalf("third stream: %v", err)
	}
	// Closing one frees a slot.
	held[0].Close()
	held[1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := a.Dial(ctx, b.PK(), 45)
		if err == nil {
			held = append(held, s)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot never freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAcceptBacklog(t *testing.T) {
	e := newEnv(t)
	e.server(ServerConfig{})
	a, b := e.client(1), e.client(1)
	l, _ := b.Listen(45)
	defer l.Close()
	ctx := context.Background()
	var held []*Stream
	defer func() {
		for _, s := range held {
			s.Close()
		}
	}()
	for i := 0; i < AcceptBacklog; i++ {
		s, err := a.Dial(ctx, b.PK(), 45)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		held = append(held, s)
	}
	_, err := a.Dial(ctx, b.PK(), 45)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != StatusBusy || se.By != "destination" {
		t.Fatalf("over the backlog: %v", err)
	}
}

func TestReconnectToAnotherServer(t *testing.T) {
	e := newEnv(t)
	s1 := e.server(ServerConfig{})
	a, b := e.client(1), e.client(1)
	sa, sb := pair(t, a, b, 45)
	sa.Close()
	sb.Close()
	s2 := e.server(ServerConfig{})
	s1.stop()
	// Both clients move to s2 and publish it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		as, bs := a.Servers(), b.Servers()
		if len(as) == 1 && as[0] == s2.PK() && len(bs) == 1 && bs[0] == s2.PK() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("clients did not reconnect: %v %v", as, bs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		l, _ := b.Listen(46)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s, err := a.Dial(ctx, b.PK(), 46)
		cancel()
		if err == nil {
			s.Write([]byte("back"))
			r, _ := l.AcceptStream()
			got := make([]byte, 4)
			io.ReadFull(r, got)
			s.Close()
			r.Close()
			l.Close()
			if !bytes.Equal(got, []byte("back")) {
				t.Fatalf("got %q", got)
			}
			return
		}
		l.Close()
		if time.Now().After(deadline) {
			t.Fatalf("dial after reconnect: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func newKKInitiator(c *Client, dst cipher.PubKey) (*noise.Handshake, error) {
	return noise.NewHandshake(noise.Config{Pattern: noise.KK, Initiator: true, LocalSK: c.cfg.SK, RemotePK: dst, Purpose: streamPurpose})
}
