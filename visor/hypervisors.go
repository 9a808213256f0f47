package visor

import (
	"context"
	"math/rand/v2"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/yamux"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/internal/hvlink"
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
	linkMaxBackoff = 10 * time.Second // a restarted hypervisor has every visor back within it
)

// jitter spreads d by ±20%, so that visors that lost one hypervisor
// together do not all dial it again in the same instant.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + rand.N(d*2/5+1)
}

// hypervisors is the hypervisors list in effect (the config's, replaced by
// a reload).
func (v *Visor) hypervisors() []HypervisorConfig {
	if p := v.hvs.Load(); p != nil {
		return *p
	}
	return nil
}

// isHypervisor reports whether pk is in the hypervisors list.
func (v *Visor) isHypervisor(pk cipher.PubKey) bool {
	return slices.ContainsFunc(v.hypervisors(), func(h HypervisorConfig) bool { return h.PublicKey == pk })
}

// setHypervisors replaces the hypervisors list (a reload): links to those
// gone close, links to new ones are dialled.
func (v *Visor) setHypervisors(list []HypervisorConfig) {
	v.hvs.Store(&list)
	select {
	case v.relink <- struct{}{}:
	default:
	}
}

// linkHypervisors keeps a link to every hypervisor of the list until ctx
// ends, starting over when a reload changes the list.
func (v *Visor) linkHypervisors(ctx context.Context) error {
	for {
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			v.linkHypervisorsOf(lctx, v.hypervisors())
		}()
		select {
		case <-ctx.Done():
			cancel()
			<-done
			return nil
		case <-v.relink:
			cancel()
			<-done
		}
	}
}

// linkHypervisorsOf keeps a link to each of list until ctx ends.
func (v *Visor) linkHypervisorsOf(ctx context.Context, list []HypervisorConfig) {
	if len(list) == 0 {
		<-ctx.Done()
		return
	}
	auth := admin.RemoteKey(hvlink.RemoteKey, v.isHypervisor)
	done := make(chan struct{}, len(list))
	for _, h := range list {
		go func() {
			defer func() { done <- struct{}{} }()
			if h.Address == "" && v.dmsg == nil {
				v.log.Warn("dmsg is off (dmsg.discovery) and the hypervisor has no address: it cannot reach this visor", zap.String("hypervisor", h.PublicKey.Hex()))
				<-ctx.Done()
				return
			}
			v.linkHypervisor(ctx, h, auth)
		}()
	}
	for range list {
		<-done
	}
}

// linkHypervisor dials hypervisor h and serves it, again and again.
func (v *Visor) linkHypervisor(ctx context.Context, h HypervisorConfig, auth admin.Authorizer) {
	log := v.log.With(zap.String("hypervisor", h.PublicKey.Hex()))
	if h.Address != "" {
		log = log.With(zap.String("remote", h.Address))
	}
	backoff := linkMinBackoff
	for ctx.Err() == nil {
		began := time.Now()
		err := v.serveLink(ctx, h, auth, log)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > linkMaxBackoff {
			backoff = linkMinBackoff // it was up a while: this is a new failure
		}
		log.Info("hypervisor link down; redialling", zap.NamedError("err", err), zap.Duration("retry_in", backoff))
		v.setLink(h.PublicKey, false, err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, linkMaxBackoff)
	}
}

// serveLink is one link: dial (directly when h has an address, else over
// dmsg), then serve until it breaks or ctx ends.
func (v *Visor) serveLink(ctx context.Context, h HypervisorConfig, auth admin.Authorizer, log *zap.Logger) error {
	var st net.Conn
	var err error
	if h.Address != "" {
		st, err = hvlink.Dial(ctx, h.Address, v.cfg.SK, h.PublicKey)
	} else {
		dctx, cancel := context.WithTimeout(ctx, dmsg.HandshakeTimeout)
		st, err = v.dmsg.Dial(dctx, h.PublicKey, dmsg.PortHypervisor)
		cancel()
	}
	if err != nil {
		return err
	}
	sess, err := yamux.Server(st, hvlink.Yamux())
	if err != nil {
		st.Close()
		return err
	}
	defer sess.Close()
	log.Info("hypervisor link up")
	v.setLink(h.PublicKey, true, nil)
	err = v.api.Serve(ctx, sess, auth, shutdownGrace)
	v.setLink(h.PublicKey, false, err)
	return err
}

// linkState is what status shows of a hypervisor link.
type linkState struct {
	up    bool
	since time.Time
	err   string
}

// setLink records a link to pk going up or down (with why).
func (v *Visor) setLink(pk cipher.PubKey, up bool, err error) {
	v.linksMu.Lock()
	defer v.linksMu.Unlock()
	if v.links == nil {
		v.links = map[cipher.PubKey]linkState{}
	}
	st := linkState{up: up, since: time.Now()}
	if err != nil {
		st.err = err.Error()
	}
	v.links[pk] = st
}
