package visor

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
	"github.com/skyfleet/skywire/transport"
)

func (v *Visor) registerTransportAPI() {
	admin.Handle(v.api, admin.AddTransport, v.addTransport)
	admin.Handle(v.api, admin.ListTransports, func(context.Context, admin.Empty) ([]admin.TransportInfo, error) {
		out := []admin.TransportInfo{}
		for _, tp := range v.tpm.Transports() {
			out = append(out, v.transportInfo(tp))
		}
		return out, nil
	})
	admin.Handle(v.api, admin.RemoveTransport, func(_ context.Context, req admin.RemoveTransportRequest) (admin.TransportInfo, error) {
		tp, err := v.tpm.Transport(req.ID)
		if err != nil {
			return admin.TransportInfo{}, admin.Errorf(admin.CodeNotFound, "%v", err)
		}
		// Stop keeping it first, or the manager would dial it again.
		if err := v.setPersistent(transport.Persistent{PK: tp.Remote(), Type: tp.Type()}, false); err != nil {
			return admin.TransportInfo{}, err
		}
		info := v.transportInfo(tp)
		if _, err := v.tpm.Remove(tp.ID().String()); err != nil {
			return admin.TransportInfo{}, admin.Errorf(admin.CodeNotFound, "%v", err)
		}
		return info, nil
	})
	admin.Handle(v.api, admin.TransportTypes, func(context.Context, admin.Empty) ([]string, error) {
		out := []string{}
		for _, t := range v.tpm.Types() {
			out = append(out, string(t))
		}
		return out, nil
	})
}

func (v *Visor) addTransport(ctx context.Context, req admin.AddTransportRequest) (admin.TransportInfo, error) {
	if err := req.PK.Check(); err != nil {
		return admin.TransportInfo{}, admin.Errorf(admin.CodeBadRequest, "%v", err)
	}
	var typ transport.Type
	if req.Type != "" {
		t, err := transport.ParseType(req.Type)
		if err != nil {
			return admin.TransportInfo{}, admin.Errorf(admin.CodeBadRequest, "%v", err)
		}
		typ = t
	}
	timeout := transport.DefaultDialTimeout
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tp, err := v.tpm.Dial(ctx, req.PK, typ)
	if err != nil {
		return admin.TransportInfo{}, admin.Errorf(dialErrorCode(err), "%v", err)
	}
	if req.Persistent {
		if err := v.setPersistent(transport.Persistent{PK: tp.Remote(), Type: tp.Type()}, true); err != nil {
			return admin.TransportInfo{}, err
		}
	}
	if req.Label != "" {
		if err := v.setLabel(tp.Remote(), req.Label); err != nil {
			return admin.TransportInfo{}, err
		}
	}
	return v.transportInfo(tp), nil
}

// setLabel names peer pk (saved in the config's transport.labels).
func (v *Visor) setLabel(pk cipher.PubKey, label string) error {
	v.cfgMu.Lock()
	defer v.cfgMu.Unlock()
	if v.cfg.Transport.Labels[pk] == label {
		return nil
	}
	next := *v.cfg
	next.Transport.Labels = maps.Clone(v.cfg.Transport.Labels)
	if next.Transport.Labels == nil {
		next.Transport.Labels = map[cipher.PubKey]string{}
	}
	next.Transport.Labels[pk] = label
	if v.configPath != "" {
		if err := next.Save(v.configPath); err != nil {
			return admin.Errorf(admin.CodeInternal, "saving the config: %v", err)
		}
	}
	v.cfg.Transport.Labels = next.Transport.Labels
	return nil
}

// label is peer pk's label, or "".
func (v *Visor) label(pk cipher.PubKey) string {
	v.cfgMu.Lock()
	defer v.cfgMu.Unlock()
	return v.cfg.Transport.Labels[pk]
}

// setPersistent adds p to (or removes it from) the persistent transports,
// in the config file and the manager.
func (v *Visor) setPersistent(p transport.Persistent, on bool) error {
	v.cfgMu.Lock()
	defer v.cfgMu.Unlock()
	if v.persistent[p] == on {
		return nil
	}
	next := *v.cfg
	next.Transport.Persistent = nil
	for _, t := range v.cfg.Transport.Persistent {
		if t.PK != p.PK || t.Type != string(p.Type) {
			next.Transport.Persistent = append(next.Transport.Persistent, t)
		}
	}
	if on {
		next.Transport.Persistent = append(next.Transport.Persistent, PersistentTransport{PK: p.PK, Type: string(p.Type)})
	}
	if next.Transport.Persistent == nil {
		next.Transport.Persistent = []PersistentTransport{}
	}
	if v.configPath != "" {
		if err := next.Save(v.configPath); err != nil {
			return admin.Errorf(admin.CodeInternal, "saving the config: %v", err)
		}
	}
	v.cfg.Transport.Persistent = next.Transport.Persistent
	v.keepUpLocked(next.Transport.Persistent)
	return nil
}

// keepUpLocked makes ts the transports kept up (the manager redials them)
// and the ones shown as persistent. v.cfgMu is held (or the visor is not
// running yet).
func (v *Visor) keepUpLocked(ts []PersistentTransport) {
	persistent := map[transport.Persistent]bool{}
	var list []transport.Persistent
	for _, t := range ts {
		tp := transport.Persistent{PK: t.PK, Type: transport.Type(t.Type)}
		persistent[tp] = true
		list = append(list, tp)
	}
	v.persistent = persistent
	v.tpm.SetPersistent(list)
}

// dialErrorCode classifies a failed dial for the caller.
func dialErrorCode(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return admin.CodeTimeout
	case errors.Is(err, transport.ErrNoAddress), errors.Is(err, dmsgdisc.ErrNotFound):
		return admin.CodeNotFound
	case errors.Is(err, transport.ErrUnavailable):
		return admin.CodeBadRequest
	case errors.Is(err, transport.ErrRefused), errors.Is(err, noise.ErrHandshake), errors.Is(err, dmsg.ErrRejected):
		return admin.CodeConflict
	}
	return admin.CodeUnavailable
}

func (v *Visor) isPersistent(p transport.Persistent) bool {
	v.cfgMu.Lock()
	defer v.cfgMu.Unlock()
	return v.persistent[p]
}

func (v *Visor) transportInfo(tp *transport.Transport) admin.TransportInfo {
	return admin.TransportInfo{
		ID:         tp.ID().String(),
		Type:       string(tp.Type()),
		RemotePK:   tp.Remote(),
		Label:      v.label(tp.Remote()),
		Dialer:     tp.Dialer(),
		Persistent: v.isPersistent(transport.Persistent{PK: tp.Remote(), Type: tp.Type()}),
		Sent:       tp.Sent(),
		Received:   tp.Received(),
		RTTMS:      float64(tp.RTT().Microseconds()) / 1000,
		AgeSeconds: time.Since(tp.Created()).Seconds(),
		Created:    tp.Created().UTC(),
	}
}
