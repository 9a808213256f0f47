// Package sdk is the Go side of the app protocol (internal/appproto): an app
// started by a visor reaches other visors' apps through it, by public key
// and port, as net.Conn and net.Listener. Control calls go over JSON-RPC;
// each connection's bytes over a data socket of its own, with no call per
// read or write.
package sdk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
)

const dialTimeout = 10 * time.Second

// Client is an app's link to its visor.
type Client struct {
	key    string
	server string
	join   string // APP_JOIN_ADDR's socket name ("": the visor cannot join)
	visor  cipher.PubKey
	port   uint16

	mu  sync.Mutex // guards rpc
	rpc *rpc.Client
}

// Env is what a visor tells an app (internal/appproto).
type Env struct {
	Key    string        // APP_KEY
	Server string        // APP_SERVER_ADDR
	Visor  cipher.PubKey // VISOR_PK
	Port   uint16        // APP_PORT
	Join   string        // APP_JOIN_ADDR ("unix:<name>"; "" if none)
}

// FromEnv connects to the visor named in the environment.
func FromEnv() (*Client, error) {
	key, server := os.Getenv(appproto.EnvKey), os.Getenv(appproto.EnvServer)
	if key == "" || server == "" {
		return nil, fmt.Errorf("%s and %s are not set: skywire apps are started by a visor (see `skywire cli visor app start`)", appproto.EnvKey, appproto.EnvServer)
	}
	visor, err := cipher.ParsePubKey(os.Getenv(appproto.EnvVisor))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", appproto.EnvVisor, err)
	}
	port, _ := strconv.ParseUint(os.Getenv(appproto.EnvPort), 10, 16)
	return New(Env{Key: key, Server: server, Visor: visor, Port: uint16(port), Join: os.Getenv(appproto.EnvJoin)})
}

// New connects to the gateway as the app env describes.
func New(env Env) (*Client, error) {
	conn, err := net.DialTimeout("tcp", env.Server, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("reaching the visor's app server at %s: %w", env.Server, err)
	}
	join, _ := strings.CutPrefix(env.Join, "unix:")
	return &Client{key: env.Key, server: env.Server, visor: env.Visor, port: env.Port, join: join, rpc: jsonrpc.NewClient(conn)}, nil
}

// Visor is the key of the visor the app runs on.
func (c *Client) Visor() cipher.PubKey { return c.visor }

// Port is the app's configured port.
func (c *Client) Port() uint16 { return c.port }

// Close ends the control connection (open connections keep their data
// sockets).
func (c *Client) Close() error { return c.rpc.Close() }

func (c *Client) call(method string, args, reply any) error {
	err := c.rpc.Call(c.key+"."+method, args, reply)
	var se rpc.ServerError
	if errors.As(err, &se) {
		return errors.New(string(se))
	}
	return err
}

// SetStatus tells the visor the app's state in words (shown by `app ls`).
func (c *Client) SetStatus(status string) error {
	return c.call("SetStatus", appproto.StatusArgs{Status: status}, &appproto.Empty{})
}

// Bypass lists the IP addresses the visor itself talks to (transport
// peers, dmsg servers, services): a VPN must keep them outside its tunnel.
func (c *Client) Bypass() ([]netip.Addr, error) {
	var r appproto.BypassReply
	if err := c.call("Bypass", appproto.Empty{}, &r); err != nil {
		return nil, err
	}
	out := make([]netip.Addr, 0, len(r.Addrs))
	for _, s := range r.Addrs {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// Addr is an app address: a visor key and a port.
type Addr struct {
	PK   cipher.PubKey
	Port uint16
}

// Network implements net.Addr.
func (Addr) Network() string { return "skywire" }

func (a Addr) String() string { return a.PK.Hex() + ":" + strconv.Itoa(int(a.Port)) }

func parseAddr(s string) Addr {
	pk, port, _ := strings.Cut(s, ":")
	var a Addr
	a.PK, _ = cipher.ParsePubKey(pk)
	n, _ := strconv.ParseUint(port, 10, 16)
	a.Port = uint16(n)
	return a
}

// Dial connects to the app at pk:port (over a route the visor sets up).
func (c *Client) Dial(ctx context.Context, pk cipher.PubKey, port uint16) (net.Conn, error) {
	r, err := c.dial(ctx, pk, port)
	if err != nil {
		return nil, err
	}
	return c.attach(r.Conn, parseAddr(r.Local), parseAddr(r.Remote))
}

// DialRPC connects like Dial but without a data socket: the connection's
// bytes go through Read and Write calls, for a short exchange before Join
// (or Attach).
func (c *Client) DialRPC(ctx context.Context, pk cipher.PubKey, port uint16) (*RPCConn, error) {
	r, err := c.dial(ctx, pk, port)
	if err != nil {
		return nil, err
	}
	return c.rpcConn(r), nil
}

func (c *Client) dial(ctx context.Context, pk cipher.PubKey, port uint16) (appproto.ConnReply, error) {
	type result struct {
		r   appproto.ConnReply
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var r appproto.ConnReply
		err := c.call("Dial", appproto.DialArgs{PK: pk.Hex(), Port: port}, &r)
		ch <- result{r, err}
	}()
	select {
	case res := <-ch:
		return res.r, res.err
	case <-ctx.Done():
		go func() { // the dial may still succeed: do not leak it
			if res := <-ch; res.err == nil {
				c.call("CloseConn", appproto.CloseArgs{Conn: res.r.Conn}, &appproto.Empty{})
			}
		}()
		return appproto.ConnReply{}, ctx.Err()
	}
}

// attach opens the data socket of connection id.
func (c *Client) attach(id uint32, local, remote Addr) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", c.server, dialTimeout)
	if err != nil {
		c.call("CloseConn", appproto.CloseArgs{Conn: id}, &appproto.Empty{})
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	fmt.Fprintf(conn, "%s %s %d\n", appproto.DataPrefix, c.key, id)
	conn.SetReadDeadline(time.Now().Add(dialTimeout))
	line, err := readLine(conn)
	conn.SetReadDeadline(time.Time{})
	if err != nil || line != "OK" {
		conn.Close()
		c.call("CloseConn", appproto.CloseArgs{Conn: id}, &appproto.Empty{})
		if err == nil {
			err = errors.New(strings.TrimPrefix(line, "ERR "))
		}
		return nil, fmt.Errorf("data socket: %w", err)
	}
	return &dataConn{Conn: conn, local: local, remote: remote}, nil
}

// readLine reads the gateway's answer a byte at a time, so nothing past it
// is consumed: after "OK" the socket is the connection's, unbuffered.
func readLine(r io.Reader) (string, error) {
	var line []byte
	var b [1]byte
	for len(line) < 256 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", errors.New("answer line too long")
}

// dataConn is a connection's data socket, with app addresses.
type dataConn struct {
	net.Conn
	local, remote Addr
}

func (d *dataConn) LocalAddr() net.Addr  { return d.local }
func (d *dataConn) RemoteAddr() net.Addr { return d.remote }

// WriteTo copies the connection to w; with w a TCP connection the kernel
// splices the sockets (io.Copy uses it).
func (d *dataConn) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, d.Conn) }

// ReadFrom copies r to the connection (spliced when r is a TCP connection).
func (d *dataConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := d.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{d.Conn}, r)
}

// SetLinger(0) makes Close a reset: the far app's reads fail instead of
// seeing an end of stream (a relay uses it when its other side failed).
func (d *dataConn) SetLinger(sec int) error {
	if tc, ok := d.Conn.(*net.TCPConn); ok {
		return tc.SetLinger(sec)
	}
	return nil
}

// CloseWrite half-closes the connection (the far app reads EOF).
func (d *dataConn) CloseWrite() error {
	if tc, ok := d.Conn.(*net.TCPConn); ok {
		return tc.CloseWrite()
	}
	return d.Conn.Close()
}

// Listen accepts connections to port (the app's own port).
func (c *Client) Listen(port uint16) (*Listener, error) {
	var r appproto.ListenReply
	if err := c.call("Listen", appproto.ListenArgs{Port: port}, &r); err != nil {
		return nil, err
	}
	return &Listener{c: c, id: r.Listener, addr: Addr{c.visor, port}}, nil
}

// Listener is a net.Listener of routes to the app's port.
type Listener struct {
	c    *Client
	id   uint32
	addr Addr
}

// Accept waits for the next connection, with a data socket.
func (l *Listener) Accept() (net.Conn, error) {
	r, err := l.accept()
	if err != nil {
		return nil, err
	}
	return l.c.attach(r.Conn, parseAddr(r.Local), parseAddr(r.Remote))
}

// AcceptRPC waits for the next connection, without a data socket (see
// DialRPC).
func (l *Listener) AcceptRPC() (*RPCConn, error) {
	r, err := l.accept()
	if err != nil {
		return nil, err
	}
	return l.c.rpcConn(r), nil
}

func (l *Listener) accept() (appproto.ConnReply, error) {
	var r appproto.ConnReply
	err := l.c.call("Accept", appproto.AcceptArgs{Listener: l.id}, &r)
	return r, err
}

// Close stops listening.
func (l *Listener) Close() error {
	return l.c.call("CloseListener", appproto.CloseArgs{Listener: l.id}, &appproto.Empty{})
}

// Addr is the app's address.
func (l *Listener) Addr() net.Addr { return l.addr }

// Advertise asks the visor to list this app's port in the service
// discovery as a server of typ ("vpn" or "proxy"), with the operator's
// country (ISO 3166-1 alpha-2) and label, for as long as the app runs.
func (c *Client) Advertise(typ, country, label string) error {
	return c.call("Advertise", appproto.AdvertiseArgs{Type: typ, Country: country, Label: label}, &appproto.Empty{})
}
