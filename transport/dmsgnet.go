package transport

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
)

// DMSGNet is the dmsg network: transports are dmsg streams to port 45,
// relayed by a dmsg server and already Noise KK end to end (no second
// layer here).
type DMSGNet struct {
	c  *dmsg.Client
	ln *dmsg.Listener
}

// NewDMSG listens on the transport port of c.
func NewDMSG(c *dmsg.Client) (*DMSGNet, error) {
	ln, err := c.Listen(dmsg.PortTransport)
	if err != nil {
		return nil, err
	}
	return &DMSGNet{c: c, ln: ln}, nil
}

// Type implements Network.
func (n *DMSGNet) Type() Type { return DMSG }

// Dial implements Network.
func (n *DMSGNet) Dial(ctx context.Context, remote cipher.PubKey) (Conn, error) {
	s, err := n.c.Dial(ctx, remote, dmsg.PortTransport)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Close releases the listener (Serve does too; for a Network never served).
func (n *DMSGNet) Close() error { return n.ln.Close() }

// Serve implements Network.
func (n *DMSGNet) Serve(ctx context.Context, accept func(Conn)) error {
	stop := context.AfterFunc(ctx, func() { n.ln.Close() })
	defer stop()
	defer n.ln.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := n.ln.AcceptStream()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			accept(s)
		}()
	}
}
