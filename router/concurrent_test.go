package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// Many dials at the same moment over one transport line: every one is set
// up (DESIGN §6: setups are never merged or dropped by a queue). The setups
// share route id 0 and have the same size, which is what a queue that
// merges "one of each type" lost. What is checked is that none is lost,
// not how fast they are: the setup timeout is generous, since 200 setups
// under the race detector on a busy 2-core machine (make test runs the
// browser tests beside this) once took more than the default 10 s.
func TestConcurrentDials(t *testing.T) {
	for _, hops := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-hop", hops), func(t *testing.T) {
			n, _ := newNodes(t, hops+1, func(c *Config) { c.SetupTimeout = time.Minute })
			for i := 0; i < hops; i++ {
				connect(t, n[i], n[i+1])
			}
			src, dst := n[0], n[hops]
			l, err := dst.r.Listen(9)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var awg sync.WaitGroup
			awg.Add(1)
			go func() { // echo one line per connection, then close
				defer awg.Done()
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					awg.Add(1)
					go func() {
						defer awg.Done()
						defer c.Close()
						io.Copy(c, c)
					}()
				}
			}()
			const dials = 200
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			errs := make(chan error, dials)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range dials {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					c, err := src.r.Dial(ctx, dst.pk, 9, DialOptions{MinHops: hops})
					if err != nil {
						errs <- fmt.Errorf("dial %d: %w", i, err)
						return
					}
					defer c.Close()
					msg := fmt.Sprintf("hello %d", i)
					if _, err := c.Write([]byte(msg)); err != nil {
						errs <- fmt.Errorf("write %d: %w", i, err)
						return
					}
					got := make([]byte, len(msg))
					if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
						errs <- fmt.Errorf("echo %d: %q %v", i, got, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			close(errs)
			failed := 0
			for err := range errs {
				if failed < 5 {
					t.Error(err)
				}
				failed++
			}
			if failed > 0 {
				t.Fatalf("%d of %d concurrent dials failed", failed, dials)
			}
			l.Close()
			awg.Wait()
		})
	}
}

// Abort ends a route so that the far end's reads fail, never io.EOF, on
// routes of 1 and 2 hops.
func TestAbort(t *testing.T) {
	for _, hops := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d-hop", hops), func(t *testing.T) {
			n, _ := newNodes(t, hops+1, nil)
			for i := 0; i < hops; i++ {
				connect(t, n[i], n[i+1])
			}
			a, b := pair(t, n[0], n[hops], 11, DialOptions{MinHops: hops})
			defer b.Close()
			a.Write([]byte("partial"))
			a.Abort()
			b.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(b)
			if err == nil || errors.Is(err, io.EOF) || !errors.Is(err, ErrRouteClosed) && hops == 1 {
				t.Fatalf("far end after Abort: %q, %v", got, err)
			}
		})
	}
}
