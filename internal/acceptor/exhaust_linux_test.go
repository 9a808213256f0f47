package acceptor

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// The fd-exhaustion run happens in a child process with a low descriptor
// limit (the limit is process-wide).
const childEnv = "ACCEPTOR_TEST_CHILD"

// Out of file descriptors, Serve and Listener back off and go on; once
// descriptors are free again an honest client is served.
func TestExhaustedDescriptors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sets RLIMIT_NOFILE")
	}
	for _, mode := range []string{"serve", "http"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestChildExhaust$", "-test.v")
			cmd.Env = append(os.Environ(), childEnv+"="+mode)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
		})
	}
}

func TestChildExhaust(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("run by TestExhaustedDescriptors")
	}
	lim := syscall.Rlimit{Cur: 64, Max: 64}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	switch mode {
	case "serve":
		go func() {
			errc <- Serve(ctx, ln, Limits{}, func(_ context.Context, c net.Conn, done func()) {
				defer c.Close()
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err == nil {
					c.Write(b[:])
				}
			})
		}()
	case "http":
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "x") })}
		go func() { errc <- hs.Serve(Listener(ln, Limits{})) }()
		defer hs.Close()
	}
	// Fill the descriptor table with connections (each takes one here for
	// the client end and one for the server end).
	var held []net.Conn
	for {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break
		}
		held = append(held, c)
		if len(held) > 200 {
			t.Fatal("the descriptor limit did not bite")
		}
	}
	time.Sleep(100 * time.Millisecond) // the loop meets EMFILE meanwhile
	select {
	case err := <-errc:
		t.Fatalf("accept loop ended on exhaustion: %v", err)
	default:
	}
	for _, c := range held {
		c.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if mode == "serve" {
			err = echo(ln.Addr().String())
		} else {
			var resp *http.Response
			if resp, err = http.Get("http://" + ln.Addr().String()); err == nil {
				resp.Body.Close()
			}
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not served after descriptors were freed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func echo(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte{'y'}); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'y' {
		return fmt.Errorf("echo: %q %v", b, err)
	}
	return nil
}
