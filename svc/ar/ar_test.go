package ar

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// resolver runs the HTTP and UDP sides on the same port number.
func resolver(t *testing.T) (string, *Server) {
	t.Helper()
	srv := NewServer(store.NewMemory(1000), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { httpauth.Serve(ctx, ln, srv); done <- struct{}{} }()
	go func() { srv.ServeUDP(ctx, pc); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return "http://" + ln.Addr().String(), srv
}

type visor struct {
	pk cipher.PubKey
	sk cipher.SecKey
	c  *Client
}

func newVisor(t *testing.T, url string) *visor {
	pk, sk := cipher.GenerateKeyPair()
	v := &visor{pk, sk, NewClient(url, sk)}
	t.Cleanup(v.c.Close)
	return v
}

func TestSTCPR(t *testing.T) {
	url, _ := resolver(t)
	ctx := context.Background()
	a, b := newVisor(t, url), newVisor(t, url)
	seen, err := a.c.BindSTCPR(ctx, 7777, []string{"192.168.1.5"})
	if err != nil || seen != "127.0.0.1:7777" {
		t.Fatalf("bind: %q %v", seen, err)
	}
	res, err := b.c.ResolveSTCPR(ctx, a.pk)
	if err != nil || res.Addr != "127.0.0.1:7777" {
		t.Fatalf("resolve: %+v %v", res, err)
	}
	// Same public IP as the target: its LAN address is offered too.
	if len(res.LocalAddrs) != 1 || res.LocalAddrs[0] != "192.168.1.5:7777" {
		t.Fatalf("local addrs: %v", res.LocalAddrs)
	}
	if _, err := a.c.ResolveSTCPR(ctx, b.pk); !httpauth.IsNotFound(err) {
		t.Fatalf("unbound key: %v", err)
	}
	if err := a.c.UnbindSTCPR(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.c.ResolveSTCPR(ctx, a.pk); !httpauth.IsNotFound(err) {
		t.Fatalf("after unbind: %v", err)
	}
	var se *httpauth.StatusError
	if _, err := a.c.BindSTCPR(ctx, 0, nil); !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Fatalf("port 0: %v", err)
	}
	if _, err := a.c.BindSTCPR(ctx, 1, []string{"not-an-ip"}); !errors.As(err, &se) || se.Status != http.StatusBadRequest {
		t.Fatalf("bad local address: %v", err)
	}
}

// bindUDP binds v's UDP socket pc at the resolver and returns the observed
// address.
func bindUDP(t *testing.T, v *visor, pc net.PacketConn) string {
	t.Helper()
	to, _ := v.c.UDPAddr()
	pkt, nonce, err := EncodeBind(v.sk, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pc.WriteTo(pkt, to)
	buf := make([]byte, 256)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no BOUND: %v", err)
	}
	got, addr, err := ParseBound(buf[:n])
	if err != nil || got != nonce {
		t.Fatalf("bound: %v nonce match %v", err, got == nonce)
	}
	return addr
}

func TestSUDPH(t *testing.T) {
	url, _ := resolver(t)
	ctx := context.Background()
	a, b := newVisor(t, url), newVisor(t, url)
	pa, _ := net.ListenPacket("udp", "127.0.0.1:0")
	pb, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pa.Close()
	defer pb.Close()

	// b must be bound before it may resolve.
	var se *httpauth.StatusError
	if _, err := b.c.ResolveSUDPH(ctx, a.pk); !errors.As(err, &se) || se.Status != http.StatusPreconditionFailed {
		t.Fatalf("resolve before binding: %v", err)
	}
	if got := bindUDP(t, a, pa); got != pa.LocalAddr().String() {
		t.Fatalf("a observed at %s, is %s", got, pa.LocalAddr())
	}
	bAddr := bindUDP(t, b, pb)

	addr, err := b.c.ResolveSUDPH(ctx, a.pk)
	if err != nil || addr != pa.LocalAddr().String() {
		t.Fatalf("resolve: %q %v", addr, err)
	}
	// a hears who wants to reach it, and where to punch.
	buf := make([]byte, 256)
	pa.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pa.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no punch request: %v", err)
	}
	dialer, dAddr, err := ParsePunchRequest(buf[:n])
	if err != nil || dialer != b.pk || dAddr != bAddr {
		t.Fatalf("punch request: %v %s %s", err, dialer.Short(), dAddr)
	}
	if to, _ := a.c.UDPAddr(); from.String() != to.String() {
		t.Fatalf("punch request came from %s, not the resolver", from)
	}
}

func TestBindRejected(t *testing.T) {
	url, _ := resolver(t)
	v := newVisor(t, url)
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pc.Close()
	to, _ := v.c.UDPAddr()
	expectSilence := func(name string, pkt []byte) {
		t.Helper()
		pc.WriteTo(pkt, to)
		pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := pc.ReadFrom(make([]byte, 256)); err == nil {
			t.Fatalf("%s: the resolver answered", name)
		}
	}
	good, _, _ := EncodeBind(v.sk, time.Now())
	pc.WriteTo(good, to)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := pc.ReadFrom(make([]byte, 256)); err != nil {
		t.Fatal("good bind unanswered")
	}
	expectSilence("replayed bind", good)
	stale, _, _ := EncodeBind(v.sk, time.Now().Add(-time.Hour))
	expectSilence("stale bind", stale)
	forged, _, _ := EncodeBind(v.sk, time.Now())
	forged[40] ^= 1 // inside the signed time
	expectSilence("forged bind", forged)
	expectSilence("garbage", []byte("GET / HTTP/1.1\r\n"))
}

func TestPacketParsers(t *testing.T) {
	pk, sk := cipher.GenerateKeyPair()
	b, _, _ := EncodeBind(sk, time.Now())
	if got, err := ParseBind(b); err != nil || got.PK != pk {
		t.Fatalf("bind round trip: %v", err)
	}
	req := EncodePunchRequest(pk, "1.2.3.4:5")
	if p, a, err := ParsePunchRequest(req); err != nil || p != pk || a != "1.2.3.4:5" {
		t.Fatalf("punch request round trip: %v", err)
	}
	if !IsPunch(EncodePunch(pk)) || IsPunch(req) {
		t.Fatal("IsPunch")
	}
	for _, bad := range [][]byte{nil, {TypeBind}, b[:len(b)-1], append(b, 0), {TypeBound, 1}, {TypePunchReq}} {
		if _, err := ParseBind(bad); err == nil {
			t.Fatalf("ParseBind accepted %x", bad)
		}
		if _, _, err := ParsePunchRequest(bad); err == nil && len(bad) > 0 && bad[0] == TypePunchReq {
			t.Fatalf("ParsePunchRequest accepted %x", bad)
		}
	}
	if _, _, err := ParseBound([]byte(strings.Repeat("x", 200))); err == nil {
		t.Fatal("ParseBound accepted garbage")
	}
}

func FuzzPackets(f *testing.F) {
	_, sk := cipher.GenerateKeyPair()
	b, _, _ := EncodeBind(sk, time.Now())
	f.Add(b)
	f.Add(EncodePunchRequest(sk.PubKey(), "127.0.0.1:9"))
	f.Add(EncodeBound([16]byte{}, "127.0.0.1:9"))
	f.Fuzz(func(t *testing.T, p []byte) {
		ParseBind(p)
		ParseBound(p)
		ParsePunchRequest(p)
		IsPunch(p)
	})
}
