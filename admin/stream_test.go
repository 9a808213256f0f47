package admin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

var opCount = Stream[echoReq, int]{Method: "POST", Path: "/v1/test/count"}

// A stream delivers its items as they are sent; the caller leaving ends
// the handler; a failure after the start reaches the caller as an *Error;
// the server stopping ends a stream that would go on forever.
func TestStream(t *testing.T) {
	s := NewServer(zap.NewNop())
	ended := make(chan error, 4)
	HandleStream(s, opCount, func(ctx context.Context, req echoReq, send func(int) error) error {
		for i := 0; ; i++ {
			if req.Text == "fail" && i == 2 {
				return Errorf(CodeConflict, "failed after %d", i)
			}
			if req.Text == "refuse" {
				return Errorf(CodeNotFound, "no such thing")
			}
			if err := send(i); err != nil {
				ended <- err
				return err
			}
			select {
			case <-ctx.Done():
				ended <- ctx.Err()
				return nil
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	path := socketPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, Open, time.Second) }()
	c, err := NewClient(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	var got []int
	stop := errors.New("enough")
	err = Follow(context.Background(), c, opCount, echoReq{}, func(i int) error {
		got = append(got, i)
		if len(got) == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || len(got) != 3 || got[2] != 2 {
		t.Fatalf("followed %v: %v", got, err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler went on after its caller left")
	}

	err = Follow(context.Background(), c, opCount, echoReq{Text: "fail"}, func(int) error { return nil })
	if !IsCode(err, CodeConflict) || !strings.Contains(err.Error(), "failed after 2") {
		t.Fatalf("a failure mid-stream: %v", err)
	}
	err = Follow(context.Background(), c, opCount, echoReq{Text: "refuse"}, func(int) error { return nil })
	if !IsCode(err, CodeNotFound) {
		t.Fatalf("a failure before the stream: %v", err)
	}

	// The server stops while a stream runs: it ends, and Serve returns.
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	first := make(chan struct{})
	followed := make(chan error, 1)
	go func() {
		once := false
		followed <- Follow(fctx, c, opCount, echoReq{}, func(int) error {
			if !once {
				once = true
				close(first)
			}
			return nil
		})
	}()
	<-first
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-followed; err != nil && fctx.Err() != nil {
		t.Fatalf("the stream outlived the server: %v", err)
	}
}
