package skysocks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/skyfleet/skywire/apps/socks5"
)

// ServeHTTP answers HTTP proxy requests on l until ctx ends, through the
// same server as SOCKS5: CONNECT host:port (HTTPS and anything else over
// TCP) is a tunnel; a request for an absolute http:// URL is forwarded.
// For the many programs (and Android) that speak only HTTP proxies.
func (c *Client) ServeHTTP(ctx context.Context, l net.Listener) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			req, err := parseTarget(addr)
			if err != nil {
				return nil, err
			}
			rc, rbr, _, err := c.dialTarget(ctx, req)
			if err != nil {
				return nil, err
			}
			return &bufferedConn{Conn: rc, r: rbr}, nil
		},
		MaxConnsPerHost:       64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: time.Minute,
	}
	defer tr.CloseIdleConnections()
	forward := &httputil.ReverseProxy{
		// The request goes where it asks, with no X-Forwarded-For: the
		// proxy does not tell the site who asked.
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out.Host = pr.In.Host },
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			httpError(w, err)
		},
	}
	srv := &http.Server{
		ReadHeaderTimeout: handshakeTimeout,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.Method == http.MethodConnect:
				c.tunnel(w, r)
			case r.URL.IsAbs() && r.URL.Scheme == "http":
				forward.ServeHTTP(w, r)
			default:
				http.Error(w, "this is an HTTP proxy: ask for an absolute http:// URL, or CONNECT host:port (for https)", http.StatusBadRequest)
			}
		}),
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve(l)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// tunnel answers CONNECT: a connection to the target through the server,
// then the client's bytes both ways.
func (c *Client) tunnel(w http.ResponseWriter, r *http.Request) {
	req, err := parseTarget(r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	default:
		http.Error(w, "too many connections through this proxy", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), handshakeTimeout)
	rc, rbr, _, err := c.dialTarget(ctx, req)
	cancel()
	if err != nil {
		httpError(w, err)
		return
	}
	defer rc.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot take the connection over", http.StatusInternalServerError)
		return
	}
	lc, lbuf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer lc.Close()
	if _, err := lc.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		return
	}
	lc.SetDeadline(time.Time{})
	pass(lc, lbuf.Reader, rc, rbr)
}

// parseTarget reads host:port.
func parseTarget(addr string) (socks5.Request, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return socks5.Request{}, fmt.Errorf("target %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil || port == 0 {
		return socks5.Request{}, fmt.Errorf("target %q: a port from 1 to 65535", addr)
	}
	return socks5.Request{Host: host, Port: uint16(port)}, nil
}

// httpError answers why the target could not be reached.
func httpError(w http.ResponseWriter, err error) {
	code := http.StatusBadGateway
	var refusal socks5.ReplyError
	switch {
	case errors.Is(err, socks5.ErrAuth):
		code = http.StatusForbidden
		err = fmt.Errorf("the skysocks server refused the passcode: %w", err)
	case errors.Is(err, errNoRoute):
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	case errors.As(err, &refusal) && refusal.Code == socks5.NotAllowed:
		code = http.StatusForbidden
	}
	http.Error(w, err.Error(), code)
}

// bufferedConn reads first what a handshake's reader holds.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
