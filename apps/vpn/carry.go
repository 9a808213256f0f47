package vpn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/skyfleet/skywire/apps/sdk"
	"github.com/skyfleet/skywire/internal/packets"
)

// joiner is a connection whose packets the visor can carry itself
// (sdk.RPCConn): the TUN is handed over after the handshake.
type joiner interface {
	JoinPackets(dev syscall.Conn) (net.Conn, error)
	Attach() (net.Conn, error)
}

// statsWait bounds how long a refresh waits for the visor's counters.
const statsWait = 500 * time.Millisecond

// path is a session's way to send frames other than packets, once its
// packets flow.
type path struct {
	send    func(kind byte, body []byte) error
	refresh func() // brings n up to date (joined: asks the visor, and waits); nothing otherwise
}

// carry moves the session's packets after the handshake on conn until the
// route or the device fails or ctx ends. Where the visor can join the TUN
// to the connection it does, and no packet crosses this process (the
// visor counts them; n follows every refresh); elsewhere the connection's
// bytes come through a data socket and this process pumps them. Every
// frame that is not a packet goes to handle; started gets the path first.
func carry(ctx context.Context, conn net.Conn, dev tun, n *packets.Counters, started func(*path), handle func(p *path, kind byte, body []byte) error) error {
	if j, ok := conn.(joiner); ok {
		if sc, ok := devConn(dev); ok {
			ctl, err := j.JoinPackets(sc)
			if err == nil {
				return carryJoined(ctx, ctl, n, started, handle)
			}
			if !errors.Is(err, sdk.ErrJoinUnsupported) {
				return fmt.Errorf("handing the tunnel to the visor: %w", err)
			}
		}
		data, err := j.Attach()
		if err != nil {
			return fmt.Errorf("the connection's data socket: %w", err)
		}
		conn = data
	}
	fw := &packets.Writer{W: conn}
	p := &path{send: fw.Write, refresh: func() {}}
	started(p)
	return packets.Pump(ctx, conn, bufio.NewReaderSize(conn, 256<<10), dev, func(kind byte, body []byte) error {
		return handle(p, kind, body)
	}, fw, n)
}

// carryJoined serves a packet join's control channel: the visor relays the
// packets; the other frames, the counters and the relay's end come here.
func carryJoined(ctx context.Context, ctl net.Conn, n *packets.Counters, started func(*path), handle func(p *path, kind byte, body []byte) error) error {
	defer ctl.Close()
	stop := context.AfterFunc(ctx, func() { ctl.Close() })
	defer stop()
	w := &packets.Writer{W: ctl}
	counted := make(chan struct{}, 1)
	p := &path{send: w.Write, refresh: func() {
		select { // a stale answer's signal
		case <-counted:
		default:
		}
		if w.Write(packets.KindStats, nil) == nil {
			select {
			case <-counted:
			case <-time.After(statsWait):
			case <-ctx.Done():
			}
		}
	}}
	started(p)
	up0, down0 := n.Up.Load(), n.Down.Load()
	for {
		kind, body, err := packets.ReadNewFrame(ctl)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("the visor's relay: %w", err)
		}
		switch kind {
		case packets.KindStats:
			if up, down, ok := packets.ParseStats(body); ok {
				n.Up.Store(up0 + up)
				n.Down.Store(down0 + down)
				select {
				case counted <- struct{}{}:
				default:
				}
			}
		case packets.KindEnd:
			if len(body) == 0 {
				return errors.New("the server ended the tunnel")
			}
			return errors.New(string(body))
		default:
			if err := handle(p, kind, body); err != nil {
				return err
			}
		}
	}
}
