//go:build windows

package cli

import (
	"time"

	"golang.org/x/term"
)

// watchSize calls fn with the console's size each time it changes (Windows
// has no SIGWINCH: it is looked at twice a second), until stop is called.
func watchSize(fd int, fn func(rows, cols int)) (stop func()) {
	done := make(chan struct{})
	go func() {
		w0, h0, _ := term.GetSize(fd)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if w, h, err := term.GetSize(fd); err == nil && (w != w0 || h != h0) {
					w0, h0 = w, h
					fn(h, w)
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done) }
}
