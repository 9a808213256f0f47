//go:build !windows

package cli

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// watchSize calls fn with the terminal fd's size each time it changes
// (SIGWINCH), until the returned stop is called.
func watchSize(fd int, fn func(rows, cols int)) (stop func()) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-sigs:
				if w, h, err := term.GetSize(fd); err == nil {
					fn(h, w)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}
