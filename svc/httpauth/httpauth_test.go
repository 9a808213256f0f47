package httpauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/redistest"
	"github.com/skyfleet/skywire/svc/store"
)

func signed(t *testing.T, method, url string, body []byte, sk cipher.SecKey) *http.Request {
	t.Helper()
	req := httptest.NewRequest(method, url, bytes.NewReader(body))
	if err := Sign(req, body, sk); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestVerify(t *testing.T) {
	pk, sk := cipher.GenerateKeyPair()
	body := []byte(`{"port":"7777"}`)
	v := NewVerifier(100)
	got, err := v.Verify(signed(t, "POST", "/v1/bind/stcpr?x=1", body, sk), body)
	if err != nil || got != pk {
		t.Fatalf("valid request: %v %v", got, err)
	}

	tests := []struct {
		name   string
		mutate func(r *http.Request) []byte
		want   error
	}{
		{"method", func(r *http.Request) []byte { r.Method = "DELETE"; return body }, ErrBadSig},
		{"path", func(r *http.Request) []byte { r.URL.Path = "/v1/bind/sudph"; return body }, ErrBadSig},
		{"query", func(r *http.Request) []byte { r.URL.RawQuery = "x=2"; return body }, ErrBadSig},
		{"body", func(r *http.Request) []byte { return []byte(`{"port":"7778"}`) }, ErrBadSig},
		{"time", func(r *http.Request) []byte {
			ms, _ := strconv.ParseInt(r.Header.Get(HeaderTime), 10, 64)
			r.Header.Set(HeaderTime, strconv.FormatInt(ms+1, 10))
			return body
		}, ErrBadSig},
		{"other key", func(r *http.Request) []byte {
			other, _ := cipher.GenerateKeyPair()
			r.Header.Set(HeaderPK, other.Hex())
			return body
		}, ErrBadSig},
		{"unsigned", func(r *http.Request) []byte { r.Header.Del(HeaderSig); return body }, ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := signed(t, "POST", "/v1/bind/stcpr?x=1", body, sk)
			b := tt.mutate(r)
			if _, err := NewVerifier(100).Verify(r, b); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReplayAndStale(t *testing.T) {
	_, sk := cipher.GenerateKeyPair()
	v := NewVerifier(100)
	r := signed(t, "GET", "/v1/x", nil, sk)
	if _, err := v.Verify(r, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(r, nil); !errors.Is(err, ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
	// After the window the nonce is forgotten, but the time is stale then.
	later := time.Now().Add(3 * Window)
	v.now = func() time.Time { return later }
	if _, err := v.Verify(r, nil); !errors.Is(err, ErrStale) {
		t.Fatalf("stale: %v", err)
	}
	// The next accepted request sweeps nonces past their window.
	fresh := httptest.NewRequest("GET", "/v1/x", nil)
	signAt(fresh, nil, sk, later)
	if _, err := v.Verify(fresh, nil); err != nil {
		t.Fatal(err)
	}
	if n := v.seen.Len(); n != 1 {
		t.Fatalf("%d nonces kept, want only the fresh one", n)
	}
}

func TestCacheBounded(t *testing.T) {
	_, sk := cipher.GenerateKeyPair()
	v := NewVerifier(2)
	for i := 0; i < 2; i++ {
		if _, err := v.Verify(signed(t, "GET", "/", nil, sk), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(signed(t, "GET", "/", nil, sk), nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("over the bound: %v", err)
	}
}

func TestRequireAndClient(t *testing.T) {
	pk, sk := cipher.GenerateKeyPair()
	v := NewVerifier(100)
	srv := httptest.NewServer(v.Require(1<<10, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, _ := FromContext(r.Context())
		b, _ := io.ReadAll(r.Body)
		if string(b) == `"fail"` {
			WriteError(w, http.StatusConflict, "no way")
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"pk": who.Hex(), "body": string(b)})
	})))
	defer srv.Close()
	c := NewClient(srv.URL, sk)
	defer c.Close()
	var out map[string]string
	if err := c.Call(context.Background(), "POST", "/v1/echo", true, "hi", &out); err != nil {
		t.Fatal(err)
	}
	if out["pk"] != pk.Hex() || out["body"] != `"hi"` {
		t.Fatalf("%v", out)
	}
	err := c.Call(context.Background(), "POST", "/v1/echo", false, "hi", nil)
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("unsigned call: %v", err)
	}
	err = c.Call(context.Background(), "POST", "/v1/echo", true, "fail", nil)
	if !errors.As(err, &se) || se.Status != http.StatusConflict || se.Message != "no way" {
		t.Fatalf("error answer: %v", err)
	}
	big := string(make([]byte, 2<<10))
	if err := c.Call(context.Background(), "POST", "/v1/echo", true, big, nil); !errors.As(err, &se) || se.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %v", err)
	}
	down := NewClient("http://127.0.0.1:1", sk)
	if err := down.Call(context.Background(), "GET", "/", false, nil, nil); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("down service: %v", err)
	}
}

// Two verifiers of one service sharing a Redis (instances behind a load
// balancer) refuse a request replayed from one to the other; two that do not
// share (memory stores: one process each) would both accept it.
func TestNoncesSharedAcrossInstances(t *testing.T) {
	url := redistest.Start(t)
	open := func() store.Store {
		d, err := store.OpenRedis(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		s, err := d.Store("svc", 100)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, sk := cipher.GenerateKeyPair()
	body := []byte(`{}`)
	req := signed(t, "POST", "/v1/x", body, sk)
	replayed := req.Clone(context.Background())

	a, b := NewVerifier(100), NewVerifier(100)
	a.ShareNonces(open())
	b.ShareNonces(open())
	if _, err := a.Verify(req, body); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(replayed, body); !errors.Is(err, ErrReplayed) {
		t.Fatalf("the request replayed to the other instance: %v, want %v", err, ErrReplayed)
	}

	m, n := NewVerifier(100), NewVerifier(100)
	m.ShareNonces(store.NewMemory(100))
	n.ShareNonces(store.NewMemory(100))
	req = signed(t, "POST", "/v1/x", body, sk)
	if _, err := m.Verify(req, body); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Verify(req.Clone(context.Background()), body); err != nil {
		t.Fatalf("separate processes on memory stores: %v", err)
	}
}
