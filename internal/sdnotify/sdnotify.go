// Package sdnotify speaks systemd's notify protocol (sd_notify(3)) for a
// service with Type=notify: READY=1 once it serves, STOPPING=1 as it
// stops, and WATCHDOG=1 at half the interval systemd asks for
// (WatchdogSec=). It is a datagram to the unix socket $NOTIFY_SOCKET (a
// leading '@' names an abstract socket); without that variable every call
// does nothing, so the same binary runs under systemd and anywhere else.
package sdnotify

import (
	"context"
	"net"
	"os"
	"strconv"
	"time"
)

// Messages.
const (
	Ready     = "READY=1"
	Stopping  = "STOPPING=1"
	Watchdog  = "WATCHDOG=1"
	Reloading = "RELOADING=1"
)

// Notify sends state to systemd; it reports whether it was sent (false
// outside systemd).
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// WatchdogInterval is how often systemd wants WATCHDOG=1 (half its
// WatchdogSec, as sd_watchdog_enabled(3) advises), or 0 if it wants none.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0 // meant for another process
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// RunWatchdog sends WATCHDOG=1 every WatchdogInterval while alive reports
// the service healthy, until ctx ends. A service that stops answering
// alive stops the pings, and systemd restarts it.
func RunWatchdog(ctx context.Context, alive func(context.Context) bool) {
	every := WatchdogInterval()
	if every == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			actx, cancel := context.WithTimeout(ctx, every)
			ok := alive(actx)
			cancel()
			if ok {
				Notify(Watchdog)
			}
		}
	}
}
