package admin

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
)

// keyedAddr is a remote address naming a key, as a dmsg stream's does.
type keyedAddr struct{ pk cipher.PubKey }

func (keyedAddr) Network() string  { return "keyed" }
func (a keyedAddr) String() string { return a.pk.Hex() }

// keyedListener gives every accepted connection the remote key pk (the
// in-memory twin of a dmsg listener, whose streams carry the caller's key).
type keyedListener struct {
	net.Listener
	pk cipher.PubKey
}

func (l keyedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return keyedConn{c, keyedAddr{l.pk}}, nil
}

type keyedConn struct {
	net.Conn
	remote net.Addr
}

func (c keyedConn) RemoteAddr() net.Addr { return c.remote }

func keyOf(a net.Addr) (cipher.PubKey, bool) {
	k, ok := a.(keyedAddr)
	return k.pk, ok
}

// One server, several listeners, each with its own authorizer: a listener
// whose callers are an allowed key is served, one whose callers are another
// key is refused, and a token listener beside them wants its token.
func TestAuthorizerPerListener(t *testing.T) {
	allowed, _ := cipher.GenerateKeyPair()
	stranger, _ := cipher.GenerateKeyPair()
	s := NewServer(zap.NewNop())
	Handle(s, opEcho, func(_ context.Context, r echoReq) (echoResp, error) {
		return echoResp{Upper: strings.ToUpper(r.Text)}, nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	var done []chan error
	listen := func(wrap func(net.Listener) net.Listener, auth Authorizer) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d := make(chan error, 1)
		done = append(done, d)
		go func() { d <- s.Serve(ctx, wrap(ln), auth, time.Second) }()
		return ln.Addr().String()
	}
	isAllowed := func(pk cipher.PubKey) bool { return pk == allowed }
	byKey := RemoteKey(keyOf, isAllowed)
	good := listen(func(ln net.Listener) net.Listener { return keyedListener{ln, allowed} }, byKey)
	bad := listen(func(ln net.Listener) net.Listener { return keyedListener{ln, stranger} }, byKey)
	plain := listen(func(ln net.Listener) net.Listener { return ln }, byKey) // names no key
	tok := listen(func(ln net.Listener) net.Listener { return ln }, Token("s3cret-token-of-32-characters-xx"))
	defer func() {
		cancel()
		for _, d := range done {
			if err := <-d; err != nil {
				t.Error(err)
			}
		}
	}()
	call := func(addr, token string) error {
		c, err := NewClient(addr, token)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = Call(context.Background(), c, opEcho, echoReq{Text: "hi"})
		return err
	}
	unauthorized := func(err error) bool {
		var ae *Error
		return errors.As(err, &ae) && ae.Code == CodeUnauthorized
	}
	if err := call(good, ""); err != nil {
		t.Fatalf("an allowed key: %v", err)
	}
	if err := call(bad, ""); !unauthorized(err) || !strings.Contains(err.Error(), stranger.Short()) {
		t.Fatalf("another key: %v", err)
	}
	if err := call(plain, ""); !unauthorized(err) {
		t.Fatalf("no key: %v", err)
	}
	if err := call(tok, ""); !unauthorized(err) {
		t.Fatalf("no token: %v", err)
	}
	if err := call(tok, "s3cret-token-of-32-characters-xx"); err != nil {
		t.Fatalf("the token: %v", err)
	}
}
