package visor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/dmsgpty"
	"github.com/skyfleet/skywire/internal/hvlink"
)

// The remote shell (package dmsgpty). The visor hosts it:
//
//   - on dmsg port 22, for the keys in dmsgpty.whitelist (and its
//     hypervisors' keys when dmsgpty.hypervisors is on): a stream from any
//     other key is refused, with the reason, before anything starts;
//   - on the admin API's POST /v1/pty with no key or its own: for the
//     local CLI, and for a hypervisor over its link when
//     dmsgpty.hypervisors is on (the hypervisor's Terminal).
//
// POST /v1/pty with another visor's key is the local CLI's way there: the
// visor dials that key's port 22 with its own key and splices the streams.

// maxPendingRefusals bounds the refused streams waiting to read their
// request, so that a flood of them holds a bounded number of goroutines.
const maxPendingRefusals = 64

// newPTYHost makes the host from the config's dmsgpty block.
func (v *Visor) newPTYHost(configDir string) *dmsgpty.Host {
	c := v.cfg.Dmsgpty
	return dmsgpty.NewHost(dmsgpty.Config{
		Shell:             c.Shell,
		Dir:               ResolvePath(configDir, c.Dir),
		MaxSessionsPerKey: c.MaxSessions,
		IdleTimeout:       c.IdleTimeoutDuration(),
		Log:               v.log.Named("pty"),
	})
}

// ptyRefusal says why pk may not open a shell over dmsg ("" if it may).
func (v *Visor) ptyRefusal(pk cipher.PubKey) string {
	v.cfgMu.Lock()
	c := v.cfg.Dmsgpty
	v.cfgMu.Unlock()
	switch {
	case slices.Contains(c.Whitelist, pk):
		return ""
	case v.isHypervisor(pk) && c.Hypervisors:
		return ""
	case v.isHypervisor(pk):
		return fmt.Sprintf("visor %s does not give its hypervisors a shell (dmsgpty.hypervisors is off in its config)", v.cfg.PK.Short())
	}
	return fmt.Sprintf("%s is not in the dmsgpty.whitelist of visor %s: there, run `skywire cli dmsgpty whitelist add %s`", pk.Short(), v.cfg.PK.Short(), pk.Hex())
}

// servePTY accepts remote shell streams on dmsg port 22 until ctx ends,
// then ends every session.
func (v *Visor) servePTY(ctx context.Context) error {
	defer v.pty.Close()
	if !dmsgpty.Supported() {
		v.log.Info("the remote shell (dmsgpty) is not supported on this system: sessions are refused")
	}
	ln, err := v.dmsg.Listen(dmsg.PortShell)
	if err != nil {
		return fmt.Errorf("dmsgpty: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var pending atomic.Int32
	log := v.log.Named("pty")
	for {
		st, err := ln.AcceptStream()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, dmsg.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dmsgpty: accept: %w", err)
		}
		pk := st.RemoteAddr().(dmsg.Addr).PK
		if reason := v.ptyRefusal(pk); reason != "" {
			log.Info("pty session refused", zap.String("remote", pk.Hex()), zap.String("via", "dmsg"), zap.String("reason", "not whitelisted"))
			if pending.Add(1) > maxPendingRefusals {
				pending.Add(-1)
				st.Close()
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer pending.Add(-1)
				dmsgpty.Refuse(st, reason)
			}()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.pty.Serve(st, dmsgpty.Peer{PK: pk, Via: "dmsg"})
		}()
	}
}

// localPTYPeer is who asks for a shell on this visor through the admin
// API, or why they may not have one.
func (v *Visor) localPTYPeer(remote net.Addr, origin string) (dmsgpty.Peer, error) {
	v.cfgMu.Lock()
	hvs := v.cfg.Dmsgpty.Hypervisors
	v.cfgMu.Unlock()
	refuse := func() (dmsgpty.Peer, error) {
		return dmsgpty.Peer{}, admin.Errorf(admin.CodeUnauthorized, "visor %s does not give its hypervisors a shell: set dmsgpty.hypervisors to true in its config", v.cfg.PK.Short())
	}
	if pk, ok := hvlink.RemoteKey(remote); ok { // a hypervisor over its link (the API admitted it)
		if !hvs {
			return refuse()
		}
		return dmsgpty.Peer{PK: pk, Via: "hypervisor", Origin: origin}, nil
	}
	if admin.InProcess(remote) { // this visor's own hypervisor
		if !hvs {
			return refuse()
		}
		return dmsgpty.Peer{PK: v.cfg.PK, Via: "hypervisor", Origin: origin}, nil
	}
	from := "cli_addr"
	if remote != nil && remote.String() != "" && remote.String() != "@" {
		from = remote.String()
	}
	return dmsgpty.Peer{Via: "cli", Origin: from}, nil
}

func (v *Visor) registerPTYAPI() {
	admin.HandleUpgrade(v.api, admin.OpenPTY, func(ctx context.Context, req admin.PTYRequest) (func(net.Conn), error) {
		remote := admin.Remote(ctx)
		if req.PK.IsNull() || req.PK == v.cfg.PK {
			peer, err := v.localPTYPeer(remote, req.Origin)
			if err != nil {
				return nil, err
			}
			return func(c net.Conn) { v.pty.Serve(c, peer) }, nil
		}
		// Only the local CLI may use this visor's key to reach another
		// visor's shell: a hypervisor reaches each visor on its own link.
		if _, ok := hvlink.RemoteKey(remote); ok || admin.InProcess(remote) {
			return nil, admin.Errorf(admin.CodeUnauthorized, "a hypervisor opens a visor's shell over that visor's own link, not through %s", v.cfg.PK.Short())
		}
		if v.dmsg == nil {
			return nil, admin.Errorf(admin.CodeUnavailable, "dmsg is off on this visor (dmsg.discovery): it cannot reach %s's shell", req.PK.Short())
		}
		dctx, cancel := context.WithTimeout(ctx, dmsg.HandshakeTimeout)
		st, err := v.dmsg.Dial(dctx, req.PK, dmsg.PortShell)
		cancel()
		if err != nil {
			var se *dmsg.StatusError
			if errors.As(err, &se) && se.Status == dmsg.StatusNoListener {
				return nil, admin.Errorf(admin.CodeNotFound, "visor %s serves no remote shell on dmsg port %d (is it an older version?): %v", req.PK.Short(), dmsg.PortShell, err)
			}
			return nil, admin.Errorf(dialErrorCode(err), "reaching %s's shell: %v", req.PK.Short(), err)
		}
		return func(c net.Conn) { splice(c, st) }, nil
	})
	admin.Handle(v.api, admin.PTYWhitelist, func(context.Context, admin.Empty) (admin.PTYAccess, error) {
		return v.ptyAccess(), nil
	})
	admin.Handle(v.api, admin.PTYWhitelistAdd, func(_ context.Context, req admin.PTYKeys) (admin.PTYAccess, error) {
		return v.editWhitelist(req.Keys, true)
	})
	admin.Handle(v.api, admin.PTYWhitelistRemove, func(_ context.Context, req admin.PTYKeys) (admin.PTYAccess, error) {
		return v.editWhitelist(req.Keys, false)
	})
}

func (v *Visor) ptyAccess() admin.PTYAccess {
	v.cfgMu.Lock()
	defer v.cfgMu.Unlock()
	wl := slices.Clone(v.cfg.Dmsgpty.Whitelist)
	if wl == nil {
		wl = []cipher.PubKey{}
	}
	return admin.PTYAccess{Whitelist: wl, Hypervisors: v.cfg.Dmsgpty.Hypervisors, Supported: dmsgpty.Supported(), Sessions: v.pty.SessionCount()}
}

// editWhitelist adds keys to dmsgpty.whitelist (or removes them) and saves
// the config. Sessions already open stay open.
func (v *Visor) editWhitelist(keys []cipher.PubKey, add bool) (admin.PTYAccess, error) {
	if len(keys) == 0 {
		return admin.PTYAccess{}, admin.Errorf(admin.CodeBadRequest, "no keys given")
	}
	for _, k := range keys {
		switch {
		case k.IsNull():
			return admin.PTYAccess{}, admin.Errorf(admin.CodeBadRequest, "an empty key")
		case k == v.cfg.PK && add:
			return admin.PTYAccess{}, admin.Errorf(admin.CodeBadRequest, "%s is this visor's own key", k.Short())
		}
	}
	n, err := v.saveWhitelist(func(wl []cipher.PubKey) []cipher.PubKey {
		for _, k := range keys {
			i := slices.Index(wl, k)
			if add && i < 0 {
				wl = append(wl, k)
			} else if !add && i >= 0 {
				wl = slices.Delete(wl, i, i+1)
			}
		}
		return wl
	})
	if err != nil {
		return admin.PTYAccess{}, err
	}
	v.log.Info("dmsgpty whitelist changed", zap.Bool("added", add), zap.Int("keys", len(keys)), zap.Int("whitelist", n))
	return v.ptyAccess(), nil
}

// saveWhitelist applies change to a copy of dmsgpty.whitelist, saves the
// config with it, then makes it the visor's; it returns its length.
func (v *Visor) saveWhitelist(change func([]cipher.PubKey) []cipher.PubKey) (int, error) {
	v.cfgMu.Lock()
	defer v.cfgMu.Unlock()
	wl := change(slices.Clone(v.cfg.Dmsgpty.Whitelist))
	if wl == nil {
		wl = []cipher.PubKey{}
	}
	next := *v.cfg
	next.Dmsgpty.Whitelist = wl
	if v.configPath != "" {
		if err := next.Save(v.configPath); err != nil {
			return 0, admin.Errorf(admin.CodeInternal, "saving the config: %v", err)
		}
	}
	v.cfg.Dmsgpty.Whitelist = wl
	return len(wl), nil
}

// splice copies a and b into each other until either ends, then closes
// both.
func splice(a, b io.ReadWriteCloser) {
	done := make(chan struct{}, 2)
	cp := func(dst io.Writer, src io.Reader) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
}
