package socks5

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/skyfleet/skywire/internal/loopback"
)

type serverResult struct {
	req Request
	err error
}

// handshake runs a client and a server; the server answers reply (with
// bound) if its handshake succeeds.
func handshake(t *testing.T, clientPass, serverPass string, req Request, reply byte, bound Request) (Request, error, serverResult) {
	t.Helper()
	c, s := loopback.Pair(t)
	ch := make(chan serverResult, 1)
	go func() {
		r, err := ServerHandshake(bufio.NewReader(s), s, serverPass)
		if err == nil {
			WriteReply(s, reply, bound)
		}
		ch <- serverResult{r, err}
	}()
	got, err := ClientHandshake(bufio.NewReader(c), c, clientPass, req)
	return got, err, <-ch
}

func TestHandshake(t *testing.T) {
	bound := Request{Host: "10.1.2.3", Port: 40000}
	for _, tc := range []struct {
		name       string
		req        Request
		cpass      string
		spass      string
		reply      byte
		wantClient error
		wantServer error
	}{
		{"ipv4", Request{"192.0.2.1", 80}, "", "", Succeeded, nil, nil},
		{"ipv6", Request{"2001:db8::1", 443}, "", "", Succeeded, nil, nil},
		{"domain", Request{"example.com", 8080}, "", "", Succeeded, nil, nil},
		{"passcode", Request{"example.com", 80}, "s3cret", "s3cret", Succeeded, nil, nil},
		{"wrong passcode", Request{"example.com", 80}, "guess", "s3cret", Succeeded, ErrAuth, ErrAuth},
		{"missing passcode", Request{"example.com", 80}, "", "s3cret", Succeeded, ErrAuth, ErrAuth},
		{"credentials to an open server", Request{"example.com", 80}, "anything", "", Succeeded, nil, nil},
		{"refused", Request{"192.0.2.1", 81}, "", "", ConnectionRefused, ReplyError{ConnectionRefused}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err, srv := handshake(t, tc.cpass, tc.spass, tc.req, tc.reply, bound)
			if !errors.Is(err, tc.wantClient) || !errors.Is(srv.err, tc.wantServer) {
				t.Fatalf("client %v (want %v), server %v (want %v)", err, tc.wantClient, srv.err, tc.wantServer)
			}
			if tc.wantServer == nil && srv.req != tc.req {
				t.Fatalf("server read %+v, want %+v", srv.req, tc.req)
			}
			if err == nil && got != bound {
				t.Fatalf("bound %+v, want %+v", got, bound)
			}
		})
	}
}

// A command other than CONNECT is answered with "command not supported".
func TestOnlyConnect(t *testing.T) {
	c, s := loopback.Pair(t)
	ch := make(chan error, 1)
	go func() {
		_, err := ServerHandshake(bufio.NewReader(s), s, "")
		ch <- err
	}()
	// greeting (no auth), then BIND to 192.0.2.1:80
	c.Write([]byte{Version, 1, MethodNone, Version, 2, 0, atypIPv4, 192, 0, 2, 1, 0, 80})
	if err := <-ch; !errors.Is(err, ErrProtocol) {
		t.Fatalf("server: %v", err)
	}
	got := make([]byte, 12)
	if _, err := c.Read(got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:4], []byte{Version, MethodNone, Version, CommandNotSupported}) {
		t.Fatalf("answers % x", got)
	}
}

func FuzzServerHandshake(f *testing.F) {
	f.Add([]byte{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80}, "")
	f.Add([]byte{5, 1, 2, 1, 1, 'u', 1, 'p', 5, 1, 0, 3, 4, 'h', 'o', 's', 't', 1, 187}, "p")
	f.Add([]byte{5, 2, 0, 2, 5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 22}, "")
	f.Fuzz(func(t *testing.T, in []byte, pass string) {
		var out bytes.Buffer
		req, err := ServerHandshake(bufio.NewReader(bytes.NewReader(in)), &out, pass)
		if err != nil {
			return
		}
		if req.Host == "" {
			t.Fatal("accepted a request without a host")
		}
		if out.Len() < 2 || out.Bytes()[0] != Version {
			t.Fatalf("accepted without a method answer: % x", out.Bytes())
		}
	})
}
