package admin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Upgrade is an operation whose connection, once the visor agrees, stops
// being HTTP and carries another protocol both ways (the remote shell).
// Req is decoded as for an Op; the visor answers 101 Switching Protocols
// with "Upgrade: <Protocol>", or an ordinary error answer. Upgrades are not
// in Routes: the hypervisor does not mount them as they are.
type Upgrade[Req any] struct {
	Method   string
	Path     string
	Protocol string
}

// Remote is the remote address of the connection ctx's request came on:
// a dmsg stream's names the caller's key; the in-process pipe's is
// InProcess. Nil outside a request.
func Remote(ctx context.Context) net.Addr {
	a, _ := ctx.Value(remoteAddrKey{}).(net.Addr)
	return a
}

// InProcess reports whether a is the in-process pipe's address (a
// hypervisor in the visor's own process).
func InProcess(a net.Addr) bool {
	_, ok := a.(pipeAddr)
	return ok
}

// HandleUpgrade attaches fn to op. fn checks the request and returns what
// serves the upgraded connection (or an error, answered as for an Op);
// serve owns the connection and returns when done with it. The connection
// is closed when the server's Serve ends.
func HandleUpgrade[Req any](s *Server, op Upgrade[Req], fn func(ctx context.Context, req Req) (serve func(net.Conn), err error)) {
	s.mux.HandleFunc(op.Method+" "+op.Path, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), op.Protocol) {
			writeError(w, Errorf(CodeBadRequest, "%s %s needs \"Connection: Upgrade\" and \"Upgrade: %s\"", op.Method, op.Path, op.Protocol))
			return
		}
		req, ok := decodeRequest[Req](w, r, op.Method, op.Path)
		if !ok {
			return
		}
		serve, err := fn(r.Context(), req)
		if err != nil {
			s.log.Debug("admin upgrade refused", zapOp(op.Path), zapErr(err))
			writeError(w, asError(err))
			return
		}
		io.Copy(io.Discard, io.LimitReader(r.Body, MaxRequestBody))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			writeError(w, Errorf(CodeInternal, "%s: this connection cannot be upgraded: %v", op.Path, err))
			return
		}
		conn.SetDeadline(time.Time{})
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", op.Protocol)
		if err := brw.Flush(); err != nil {
			conn.Close()
			return
		}
		uc := net.Conn(conn)
		if n := brw.Reader.Buffered(); n > 0 { // the caller spoke first
			uc = &bufferedConn{Conn: conn, r: brw.Reader}
		}
		if sctx, ok := r.Context().Value(serveCtxKey{}).(context.Context); ok {
			stop := context.AfterFunc(sctx, func() { conn.Close() })
			defer stop()
		}
		serve(uc)
	})
}

// bufferedConn reads what the HTTP server had already buffered first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// DialUpgrade performs op and returns the upgraded connection. ctx bounds
// the request only, not the connection's life. Failures are as for Call.
func DialUpgrade[Req any](ctx context.Context, c *Client, op Upgrade[Req], req Req) (io.ReadWriteCloser, error) {
	hresp, err := c.send(ctx, op.Method, op.Path, req, http.Header{"Connection": {"Upgrade"}, "Upgrade": {op.Protocol}})
	if err != nil {
		return nil, err
	}
	rwc, ok := hresp.Body.(io.ReadWriteCloser)
	if hresp.StatusCode != http.StatusSwitchingProtocols || !ok {
		hresp.Body.Close()
		return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("%s %s: the visor answered HTTP %d, not an upgrade (is it older than this CLI?)", op.Method, op.Path, hresp.StatusCode)}
	}
	return rwc, nil
}
