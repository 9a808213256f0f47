package visor

import (
	"context"
	"io"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
)

// The hypervisor link (docs/protocol.md, "Hypervisor link"): the visor
// dials each hypervisor in its config on dmsg port 46 (end-to-end Noise KK:
// both keys are proven), runs yamux on the stream as its server, and serves
// its whole admin API on every yamux stream the hypervisor opens, admitting
// only a caller whose key is in the visor's hypervisors list. When the link
// breaks it is dialled again, with backoff, forever.

// Backoff between hypervisor dials.
const (
	linkMinBackoff = time.Second
	linkMaxBackoff = 30 * time.Second
)

// hypervisorKey is the key a link's remote address names.
func hypervisorKey(a net.Addr) (cipher.PubKey, bool) {
	d, ok := a.(dmsg.Addr)
	return d.PK, ok
}

// isHypervisor reports whether pk is in the config's hypervisors list.
func (v *Visor) isHypervisor(pk cipher.PubKey) bool {
	return slices.ContainsFunc(v.cfg.Hypervisors, func(h HypervisorConfig) bool { return h.PublicKey == pk })
}

// linkHypervisors keeps a link to every hypervisor until ctx ends.
func (v *Visor) linkHypervisors(ctx context.Context) error {
	if len(v.cfg.Hypervisors) == 0 {
		return nil
	}
	if v.dmsg == nil {
		v.log.Warn("hypervisors are configured, but dmsg is off (dmsg.discovery): no hypervisor can reach this visor")
		<-ctx.Done()
		return nil
	}
	auth := admin.RemoteKey(hypervisorKey, v.isHypervisor)
	done := make(chan struct{}, len(v.cfg.Hypervisors))
	for _, h := range v.cfg.Hypervisors {
		go func() {
			defer func() { done <- struct{}{} }()
			v.linkHypervisor(ctx, h.PublicKey, auth)
		}()
	}
	for range v.cfg.Hypervisors {
		<-done
	}
	return nil
}

// linkHypervisor dials hypervisor pk and serves it, again and again.
func (v *Visor) linkHypervisor(ctx context.Context, pk cipher.PubKey, auth admin.Authorizer) {
	log := v.log.With(zap.String("hypervisor", pk.Hex()))
	backoff := linkMinBackoff
	for ctx.Err() == nil {
		began := time.Now()
		err := v.serveLink(ctx, pk, auth, log)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > linkMaxBackoff {
			backoff = linkMinBackoff // it was up a while: this is a new failure
		}
		log.Info("hypervisor link down; redialling", zap.NamedError("err", err), zap.Duration("retry_in", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, linkMaxBackoff)
	}
}

// serveLink is one link: dial, then serve until it breaks or ctx ends.
func (v *Visor) serveLink(ctx context.Context, pk cipher.PubKey, auth admin.Authorizer, log *zap.Logger) error {
	dctx, cancel := context.WithTimeout(ctx, dmsg.HandshakeTimeout)
	st, err := v.dmsg.Dial(dctx, pk, dmsg.PortHypervisor)
	cancel()
	if err != nil {
		return err
	}
	cfg := yamux.DefaultConfig()
	cfg.KeepAliveInterval = 5 * time.Second // a dead hypervisor is noticed in seconds
	cfg.LogOutput, cfg.Logger = io.Discard, nil
	sess, err := yamux.Server(st, cfg)
	if err != nil {
		st.Close()
		return err
	}
	defer sess.Close()
	log.Info("hypervisor link up")
	return v.api.Serve(ctx, sess, auth, shutdownGrace)
}
