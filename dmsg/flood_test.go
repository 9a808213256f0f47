package dmsg

import (
	"context"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
)

// rawSession opens a session with a fresh key from source address from,
// as a flooder would, and returns the server's answer.
func rawSession(t *testing.T, from net.IP, srv *runningServer, addr string) (net.Conn, Status, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_, sk := cipher.GenerateKeyPair()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := noise.Run(ctx, c, noise.Config{Pattern: noise.XK, Initiator: true, LocalSK: sk, RemotePK: srv.PK(), Purpose: sessionPurpose})
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	ans, err := noise.ReadMsg(nc, 1+maxReason)
	if err != nil {
		t.Fatal(err)
	}
	st, reason, err := parseSessionAnswer(ans)
	if err != nil {
		t.Fatal(err)
	}
	return nc, st, reason
}

// Fresh keys from one address take at most its share of sessions, are told
// why the rest are refused, and a visor from elsewhere still connects.
func TestSessionFloodFromOneAddress(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("binds 127.0.0.2 (Linux loopback)")
	}
	e := newEnv(t)
	srv := e.server(ServerConfig{MaxSessions: 64, MaxSessionsPerAddr: 8})
	addr := serverAddr(t, e, srv)
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	accepted := 0
	var refusal string
	for range 40 {
		c, st, reason := rawSession(t, loopback.OtherHost, srv, addr)
		held = append(held, c)
		if st == StatusOK {
			accepted++
		} else {
			refusal = reason
		}
	}
	if accepted != 8 {
		t.Fatalf("%d sessions from one address accepted, want 8", accepted)
	}
	if !strings.Contains(refusal, "from your address") {
		t.Fatalf("the refusal does not say why: %q", refusal)
	}
	// An honest client (127.0.0.1) gets its session.
	e.client(1)
	// A client refused is told which server refused it and why.
	cl, err := NewClient(ClientConfig{SK: mustSK(), Discovery: e.disc, SessionsCount: 1})
	if err != nil {
		t.Fatal(err)
	}
	cl.runCtx = context.Background()
	for range 7 {
		c, st, _ := rawSession(t, net.IPv4(127, 0, 0, 1), srv, addr)
		held = append(held, c)
		if st != StatusOK {
			t.Fatal("the honest address's share was taken")
		}
	}
	_, err = cl.dialSession(context.Background(), srv.PK(), addr)
	if err == nil || !strings.Contains(err.Error(), srv.PK().Short()) || !strings.Contains(err.Error(), "from your address") {
		t.Fatalf("refused client's error: %v", err)
	}
}

// Idle connections from one address hold at most its share of handshake
// slots: a visor from elsewhere still gets a session during the flood.
func TestHandshakeFloodFromOneAddress(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("binds 127.0.0.2 (Linux loopback)")
	}
	e := newEnv(t)
	srv := e.server(ServerConfig{})
	addr := serverAddr(t, e, srv)
	loopback.Idle(t, addr, 300)
	for range 5 {
		e.client(1) // fails the test if it never gets a session
	}
}

func mustSK() cipher.SecKey {
	_, sk := cipher.GenerateKeyPair()
	return sk
}

// serverAddr is the address srv publishes.
func serverAddr(t *testing.T, e *env, srv *runningServer) string {
	t.Helper()
	list, err := dmsgdisc.NewClient(e.disc, mustSK()).Servers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, se := range list {
		if se.PK == srv.PK() {
			return se.Server.Address
		}
	}
	t.Fatal("server not listed")
	return ""
}

// A client given trusted servers uses only those, whatever the discovery
// lists.
func TestClientUsesOnlyTrustedServers(t *testing.T) {
	e := newEnv(t)
	e.server(ServerConfig{})
	good := e.server(ServerConfig{})
	e.server(ServerConfig{})
	for range 5 {
		c, err := NewClient(ClientConfig{SK: mustSK(), Discovery: e.disc, SessionsCount: 3, TrustedServers: []cipher.PubKey{good.PK()}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		select {
		case <-c.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("never ready")
		}
		if got := c.Servers(); len(got) != 1 || got[0] != good.PK() {
			t.Fatalf("sessions with %v, want only %s", got, good.PK().Short())
		}
		cancel()
		<-done
	}
}

// Requests, responses and session answers from the network never panic;
// a request is taken only with src's valid signature.
func FuzzMessages(f *testing.F) {
	pk, sk := cipher.GenerateKeyPair()
	dpk, _ := cipher.GenerateKeyPair()
	req, _ := encodeRequest(&request{Src: Addr{pk, 49152}, Dst: Addr{dpk, 45}, Time: time.Now(), Noise: []byte("hs")}, sk)
	f.Add(req)
	f.Add(encodeResponse(StatusOK, originDestination, []byte("noise")))
	f.Add(encodeSessionAnswer(StatusBusy, "busy: full"))
	f.Add([]byte{Version})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := parseRequest(b); err == nil {
			again, err := encodeRequest(r, sk)
			if err == nil && r.Src.PK == pk && len(again) != len(b) {
				t.Fatalf("request round trip changed its length: %x", b)
			}
		}
		parseResponse(b)
		if st, reason, err := parseSessionAnswer(b); err == nil && (len(reason) > maxReason || st != Status(b[0])) {
			t.Fatalf("session answer %x: %v %q", b, st, reason)
		}
	})
}
