package appserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/router"
)

// gateway is the RPC face of a session (net/rpc serves its methods under
// the session's key; a revoked session answers nothing useful).
type gateway struct{ ss *session }

func (g gateway) check() error {
	g.ss.mu.Lock()
	defer g.ss.mu.Unlock()
	if g.ss.revoked {
		return errRevoked
	}
	return nil
}

// Dial connects to pk:port over a route.
func (g gateway) Dial(args appproto.DialArgs, reply *appproto.ConnReply) error {
	if err := g.check(); err != nil {
		return err
	}
	pk, err := cipher.ParsePubKey(args.PK)
	if err != nil {
		return err
	}
	if args.Port == router.PortRouter {
		return errors.New("port 0 is the router's own: apps listen on ports 1–65535")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := g.ss.s.cfg.Router.Dial(ctx, pk, args.Port, router.DialOptions{})
	if err != nil {
		return err
	}
	return g.ss.adopt(c, reply)
}

// Listen accepts routes to the app's own port.
func (g gateway) Listen(args appproto.ListenArgs, reply *appproto.ListenReply) error {
	if err := g.check(); err != nil {
		return err
	}
	g.ss.s.mu.Lock()
	own := g.ss.app.cfg.Port
	g.ss.s.mu.Unlock()
	if args.Port != own {
		return fmt.Errorf("port %d is not this app's (its port is %d)", args.Port, own)
	}
	l, err := g.ss.s.cfg.Router.Listen(args.Port)
	if err != nil {
		return err
	}
	g.ss.mu.Lock()
	defer g.ss.mu.Unlock()
	if g.ss.revoked {
		l.Close()
		return errRevoked
	}
	g.ss.nextID++
	g.ss.listeners[g.ss.nextID] = l
	reply.Listener = g.ss.nextID
	return nil
}

// Accept waits for the listener's next connection.
func (g gateway) Accept(args appproto.AcceptArgs, reply *appproto.ConnReply) error {
	g.ss.mu.Lock()
	l := g.ss.listeners[args.Listener]
	g.ss.mu.Unlock()
	if l == nil {
		return fmt.Errorf("no listener %d", args.Listener)
	}
	c, err := l.Accept()
	if err != nil {
		return err
	}
	return g.ss.adopt(c, reply)
}

// rpcConn returns a connection usable by Read and Write calls.
func (g gateway) rpcConn(id uint32) (*router.Conn, error) {
	g.ss.mu.Lock()
	defer g.ss.mu.Unlock()
	ac := g.ss.conns[id]
	switch {
	case ac == nil:
		return nil, fmt.Errorf("no connection %d", id)
	case ac.attached:
		return nil, fmt.Errorf("connection %d has a data socket or is joined: use that", id)
	}
	return ac.c, nil
}

// Read reads up to n bytes (n < 1 reads up to one, n past MaxRead up to
// MaxRead). Data read before an error is answered first; the error comes
// with the next call.
func (g gateway) Read(args appproto.ReadArgs, reply *appproto.ReadReply) error {
	c, err := g.rpcConn(args.Conn)
	if err != nil {
		return err
	}
	buf := make([]byte, min(max(args.N, 1), appproto.MaxRead))
	n, err := c.Read(buf)
	reply.Data = buf[:n]
	switch {
	case errors.Is(err, io.EOF):
		reply.EOF = true
		return nil
	case errors.Is(err, os.ErrDeadlineExceeded) && n == 0:
		reply.Timeout = true
		return nil
	case n > 0:
		return nil
	}
	return err
}

// Write writes data.
func (g gateway) Write(args appproto.WriteArgs, reply *appproto.WriteReply) error {
	c, err := g.rpcConn(args.Conn)
	if err != nil {
		return err
	}
	reply.N, err = c.Write(args.Data)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		reply.Timeout = true
		return nil
	}
	return err
}

// CloseWrite ends the app's direction of a connection: the far end reads
// end of stream after what was written, and reading goes on.
func (g gateway) CloseWrite(args appproto.CloseArgs, _ *appproto.Empty) error {
	c, err := g.rpcConn(args.Conn)
	if err != nil {
		return err
	}
	return c.CloseWrite()
}

// CloseConn closes a connection.
func (g gateway) CloseConn(args appproto.CloseArgs, _ *appproto.Empty) error {
	if _, err := g.ss.conn(args.Conn); err != nil {
		return err
	}
	g.ss.closeConn(args.Conn)
	return nil
}

// CloseListener stops a listener.
func (g gateway) CloseListener(args appproto.CloseArgs, _ *appproto.Empty) error {
	g.ss.mu.Lock()
	l := g.ss.listeners[args.Listener]
	delete(g.ss.listeners, args.Listener)
	g.ss.mu.Unlock()
	if l == nil {
		return fmt.Errorf("no listener %d", args.Listener)
	}
	return l.Close()
}

// SetStatus records the app's state in words.
func (g gateway) SetStatus(args appproto.StatusArgs, _ *appproto.Empty) error {
	if err := g.check(); err != nil {
		return err
	}
	st := args.Status
	if len(st) > appproto.MaxStatus {
		return fmt.Errorf("status of %d bytes: at most %d", len(st), appproto.MaxStatus)
	}
	s := g.ss.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := g.ss.app; a.sess == g.ss && a.status != st {
		a.status = st
		s.updates.Notify()
	}
	return nil
}

// Bypass lists the addresses the visor's own traffic goes to.
func (g gateway) Bypass(_ appproto.Empty, reply *appproto.BypassReply) error {
	if err := g.check(); err != nil {
		return err
	}
	reply.Addrs = []string{}
	if f := g.ss.s.cfg.Bypass; f != nil {
		for _, a := range f() {
			reply.Addrs = append(reply.Addrs, a.String())
		}
	}
	return nil
}

// Advertise lists the app's port in the service discovery while the app
// runs (once per type: again replaces the country and label).
func (g gateway) Advertise(args appproto.AdvertiseArgs, _ *appproto.Empty) error {
	if err := g.check(); err != nil {
		return err
	}
	if args.Type != "vpn" && args.Type != "proxy" {
		return fmt.Errorf("advertise: type %q (vpn or proxy)", args.Type)
	}
	f := g.ss.s.cfg.Advertise
	if f == nil {
		return errors.New("advertise: this visor has no service discovery (service_discovery in its config)")
	}
	ss := g.ss
	ss.mu.Lock()
	prev := ss.ads[args.Type]
	delete(ss.ads, args.Type)
	ss.mu.Unlock()
	if prev != nil { // before the new one registers: its deregistration would remove it
		prev()
	}
	ss.s.mu.Lock()
	name, port := ss.app.cfg.Name, ss.app.cfg.Port
	ss.s.mu.Unlock()
	stop, err := f(name, port, args)
	if err != nil {
		return err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.revoked {
		go stop()
		return errRevoked
	}
	if ss.ads == nil {
		ss.ads = map[string]func(){}
	}
	ss.ads[args.Type] = stop
	return nil
}

// SetDeadline sets a connection's read, write or both deadlines.
func (g gateway) SetDeadline(args appproto.DeadlineArgs, _ *appproto.Empty) error {
	ac, err := g.ss.conn(args.Conn)
	if err != nil {
		return err
	}
	switch args.Kind {
	case "read":
		return ac.c.SetReadDeadline(args.Deadline)
	case "write":
		return ac.c.SetWriteDeadline(args.Deadline)
	case "both", "":
		return ac.c.SetDeadline(args.Deadline)
	}
	return fmt.Errorf("deadline kind %q: want read, write or both", args.Kind)
}
