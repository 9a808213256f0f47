//go:build !linux

package appserver

import (
	"context"
	"net"
)

// listenJoin: no join socket here; apps relay through data sockets.
func listenJoin() net.Listener { return nil }

func (s *Server) serveJoin(context.Context, net.Conn, func()) {}
