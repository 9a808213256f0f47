package sdk

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/skyfleet/skywire/internal/appproto"
)

// ErrJoinUnsupported: this visor (or this system) cannot take a socket
// over; Attach and relay instead.
var ErrJoinUnsupported = errors.New("the visor cannot join sockets here")

// RPCConn is a connection whose bytes go through the gateway's Read and
// Write calls: slow, but it leaves the connection free to be joined to a
// local socket (Join) once a handshake is done, or to get a data socket
// (Attach). It is a net.Conn.
type RPCConn struct {
	c             *Client
	id            uint32
	local, remote Addr

	mu   sync.Mutex // guards done
	done bool       // closed, joined or attached: the id is no longer ours
}

func (c *Client) rpcConn(r appproto.ConnReply) *RPCConn {
	return &RPCConn{c: c, id: r.Conn, local: parseAddr(r.Local), remote: parseAddr(r.Remote)}
}

// ID is the connection's id at the gateway.
func (rc *RPCConn) ID() uint32 { return rc.id }

func (rc *RPCConn) live() error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.done {
		return net.ErrClosed
	}
	return nil
}

// finish marks the id handed on; it reports false if it already was.
func (rc *RPCConn) finish() bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.done {
		return false
	}
	rc.done = true
	return true
}

// Read reads through one Read call.
func (rc *RPCConn) Read(p []byte) (int, error) {
	if err := rc.live(); err != nil {
		return 0, err
	}
	var r appproto.ReadReply
	if err := rc.c.call("Read", appproto.ReadArgs{Conn: rc.id, N: min(len(p), appproto.MaxRead)}, &r); err != nil {
		return 0, err
	}
	if r.Timeout {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p, r.Data)
	if n == 0 && r.EOF {
		return 0, io.EOF
	}
	return n, nil
}

// Write writes through Write calls.
func (rc *RPCConn) Write(p []byte) (int, error) {
	if err := rc.live(); err != nil {
		return 0, err
	}
	total := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), appproto.MaxRead)]
		var r appproto.WriteReply
		if err := rc.c.call("Write", appproto.WriteArgs{Conn: rc.id, Data: chunk}, &r); err != nil {
			return total, err
		}
		total += r.N
		if r.Timeout {
			return total, os.ErrDeadlineExceeded
		}
		p = p[len(chunk):]
	}
	return total, nil
}

// CloseWrite half-closes the connection: the far app reads end of stream,
// and reading goes on.
func (rc *RPCConn) CloseWrite() error {
	if err := rc.live(); err != nil {
		return err
	}
	return rc.c.call("CloseWrite", appproto.CloseArgs{Conn: rc.id}, &appproto.Empty{})
}

// Close closes the connection (nothing, after Join or Attach).
func (rc *RPCConn) Close() error {
	if !rc.finish() {
		return nil
	}
	return rc.c.call("CloseConn", appproto.CloseArgs{Conn: rc.id}, &appproto.Empty{})
}

func (rc *RPCConn) deadline(kind string, t time.Time) error {
	if err := rc.live(); err != nil {
		return err
	}
	return rc.c.call("SetDeadline", appproto.DeadlineArgs{Conn: rc.id, Kind: kind, Deadline: t}, &appproto.Empty{})
}

func (rc *RPCConn) SetDeadline(t time.Time) error      { return rc.deadline("both", t) }
func (rc *RPCConn) SetReadDeadline(t time.Time) error  { return rc.deadline("read", t) }
func (rc *RPCConn) SetWriteDeadline(t time.Time) error { return rc.deadline("write", t) }
func (rc *RPCConn) LocalAddr() net.Addr                { return rc.local }
func (rc *RPCConn) RemoteAddr() net.Addr               { return rc.remote }

// Attach switches the connection to a data socket and returns it.
func (rc *RPCConn) Attach() (net.Conn, error) {
	if !rc.finish() {
		return nil, net.ErrClosed
	}
	return rc.c.attach(rc.id, rc.local, rc.remote)
}

// Join hands local (a connected TCP or unix stream socket) to the visor,
// which from then on relays local ↔ the route itself, with no copy through
// this app. Write anything already read from either side first. On success
// local and rc are both consumed (closed here); with ErrJoinUnsupported
// neither is, and the caller can Attach and relay.
func (rc *RPCConn) Join(local net.Conn) error {
	if rc.c.join == "" {
		return ErrJoinUnsupported
	}
	if err := rc.live(); err != nil {
		return err
	}
	line := appproto.JoinPrefix + " " + rc.c.key + " " + strconv.FormatUint(uint64(rc.id), 10) + "\n"
	if err := sendConn(rc.c.join, line, local); err != nil {
		return err
	}
	rc.finish()
	local.Close()
	return nil
}

// JoinPackets hands dev, a packet device (a TUN; on Linux), to the visor,
// which from then on relays its packets ↔ the route itself, length-framed
// (internal/packets), with no packet through this app. It returns the
// join's control channel: frames of every other kind the route brings
// arrive there, frames written there go onto the route, and it carries the
// relay's counters and its end (internal/appproto, "packet join"). The app
// keeps dev but must not read it until the control channel ends. On
// success rc is consumed; with ErrJoinUnsupported it is not, and the
// caller can Attach and relay.
func (rc *RPCConn) JoinPackets(dev syscall.Conn) (net.Conn, error) {
	if rc.c.join == "" {
		return nil, ErrJoinUnsupported
	}
	if err := rc.live(); err != nil {
		return nil, err
	}
	line := appproto.PacketJoinPrefix + " " + rc.c.key + " " + strconv.FormatUint(uint64(rc.id), 10) + "\n"
	ctl, err := sendFD(rc.c.join, line, dev)
	if err != nil {
		return nil, err
	}
	rc.finish()
	return ctl, nil
}
