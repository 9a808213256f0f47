package skysocks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/apps/socks5"
	"github.com/skyfleet/skywire/cipher"
)

// Network is how the client reaches its server: the app SDK's Dial.
type Network interface {
	Dial(ctx context.Context, pk cipher.PubKey, port uint16) (net.Conn, error)
}

// Probe backoff after the server could not be reached.
const (
	probeMin = time.Second
	probeMax = 30 * time.Second
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Server is the skysocks server's visor key (required).
	Server cipher.PubKey
	// ServerPort is its port (zero: ServerPort).
	ServerPort uint16
	// Passcode is the server's passcode (zero: none).
	Passcode string
	// MaxConns bounds simultaneous connections (zero: DefaultMaxConns).
	MaxConns int
	// Status, if set, is told each change of the link's state in words
	// ("connected to 02ab…", "cannot reach 02ab…: …; retrying in 4s").
	Status func(string)
	Log    *zap.Logger
}

// Client is skysocks-client: a local SOCKS5 server whose connections go to
// a skysocks Server over routes.
type Client struct {
	cfg   ClientConfig
	net   Network
	log   *zap.Logger
	slots chan struct{}
	kick  chan struct{} // a failed dial asks the prober to look again

	mu     sync.Mutex // guards status
	status string
}

// NewClient makes a client reaching its server through n.
func NewClient(cfg ClientConfig, n Network) (*Client, error) {
	if cfg.Server.IsNull() {
		return nil, errors.New("no skysocks server: pass --srv <public key> (or run `skywire cli proxy start <public key>`)")
	}
	if cfg.ServerPort == 0 {
		cfg.ServerPort = ServerPort
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Status == nil {
		cfg.Status = func(string) {}
	}
	return &Client{cfg: cfg, net: n, log: cfg.Log, slots: make(chan struct{}, cfg.MaxConns), kick: make(chan struct{}, 1)}, nil
}

// Status is the link's state in words.
func (c *Client) Status() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *Client) setStatus(s string) {
	c.mu.Lock()
	changed := c.status != s
	c.status = s
	c.mu.Unlock()
	if changed {
		c.log.Info(s)
		c.cfg.Status(s)
	}
}

// Serve answers SOCKS5 on l until ctx ends or l fails, then waits for its
// connections. Meanwhile it checks that the server can be reached (at
// start, and again after a failed connection, with backoff) and reports it.
func (c *Client) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.probe(ctx)
	}()
	err := serve(ctx, l, c.slots, c.log, c.serveConn)
	cancel()
	wg.Wait()
	return err
}

// probe dials the server until it answers, then waits for a kick (a
// connection failed) to look again.
func (c *Client) probe(ctx context.Context) {
	srv := c.cfg.Server.Hex()
	c.setStatus("connecting to " + srv)
	wait := probeMin
	for {
		err := c.check(ctx)
		if ctx.Err() != nil {
			return
		}
		var next <-chan time.Time
		switch {
		case err == nil:
			c.setStatus("connected to " + srv)
			wait = probeMin
		case errors.Is(err, socks5.ErrAuth):
			c.setStatus(c.refused())
			next = time.After(probeMax) // until the passcode changes, asking again changes nothing
		default:
			c.setStatus(fmt.Sprintf("cannot reach %s: %v; retrying in %v", srv, err, wait))
			next = time.After(wait)
			wait = min(2*wait, probeMax)
		}
		select {
		case <-ctx.Done():
			return
		case <-next:
		case <-c.kick:
		}
	}
}

// probeTarget is what a check asks the server to connect to: nothing can
// listen on port 0, so the server's answer is a refusal, but one it gives
// only after it accepted the passcode.
var probeTarget = socks5.Request{Host: "0.0.0.0", Port: 0}

// check makes a request through the server with the passcode: nil if the
// server answered it (a refusal to reach the probe target included),
// socks5.ErrAuth if it refused the passcode, else why it could not be
// reached.
func (c *Client) check(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := c.net.Dial(dctx, c.cfg.Server, c.cfg.ServerPort)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(dctx, func() { conn.Close() })
	defer stop()
	_, err = socks5.ClientHandshake(bufio.NewReader(conn), conn, c.cfg.Passcode, probeTarget)
	var refusal socks5.ReplyError
	if errors.As(err, &refusal) {
		return nil
	}
	if err == nil {
		return nil
	}
	if dctx.Err() != nil {
		return fmt.Errorf("no answer from its skysocks: %w", dctx.Err())
	}
	return err
}

// errNoRoute: the server's visor could not be reached.
var errNoRoute = errors.New("no route to the server")

// dialTarget connects to req's target through the server: a route to it,
// then the SOCKS5 request with the passcode. It returns the connection,
// the reader holding what came past the server's answer, and the address
// the server bound.
func (c *Client) dialTarget(ctx context.Context, req socks5.Request) (net.Conn, *bufio.Reader, socks5.Request, error) {
	rc, err := c.net.Dial(ctx, c.cfg.Server, c.cfg.ServerPort)
	if err != nil {
		c.log.Warn("no route to the server", zap.Error(err))
		select { // the prober looks again
		case c.kick <- struct{}{}:
		default:
		}
		return nil, nil, socks5.Request{}, fmt.Errorf("%w: %w", errNoRoute, err)
	}
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	rbr := bufio.NewReaderSize(rc, 1024)
	bound, err := socks5.ClientHandshake(rbr, rc, c.cfg.Passcode, req)
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		rc.Close()
		if errors.Is(err, socks5.ErrAuth) {
			c.setStatus(c.refused())
		}
		return nil, nil, socks5.Request{}, err
	}
	c.setStatus("connected to " + c.cfg.Server.Hex()) // a request went through: true whatever the prober saw
	return rc, rbr, bound, nil
}

func (c *Client) refused() string {
	return fmt.Sprintf("%s refused the passcode: set the server's passcode with --passcode", c.cfg.Server.Hex())
}

func (c *Client) serveConn(ctx context.Context, lc net.Conn) {
	stop := context.AfterFunc(ctx, func() { lc.Close() })
	defer stop()
	defer lc.Close()
	lc.SetDeadline(time.Now().Add(handshakeTimeout))
	lbr := bufio.NewReaderSize(lc, 1024)
	req, err := socks5.ServerHandshake(lbr, lc, "")
	if err != nil {
		c.log.Debug("local handshake failed", zap.Stringer("remote", lc.RemoteAddr()), zap.Error(err))
		return
	}
	log := c.log.With(zap.String("target", req.Addr()))
	dctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	rc, rbr, bound, err := c.dialTarget(dctx, req)
	if err != nil {
		code := socks5.ReplyCode(err)
		switch {
		case errors.Is(err, errNoRoute):
			code = socks5.NetworkUnreachable
		case errors.Is(err, socks5.ErrAuth):
			code = socks5.NotAllowed
		}
		log.Info("the server could not connect", zap.Error(err))
		socks5.WriteReply(lc, code, socks5.Request{})
		return
	}
	defer rc.Close()
	if err := socks5.WriteReply(lc, socks5.Succeeded, bound); err != nil {
		return
	}
	lc.SetDeadline(time.Time{})
	pass(lc, lbr, rc, rbr)
}
