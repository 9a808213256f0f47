//go:build !linux

package router

import (
	"io"

	"github.com/skyfleet/skywire/noise"
)

// readFromSocket: only Linux reads sockets with readv (readv_linux.go).
func (c *routeConn) readFromSocket(io.Reader, *noise.Conn) (int64, bool, error) { return 0, false, nil }
