package visor

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/internal/buildinfo"
	"github.com/skyfleet/skywire/router"
	"github.com/skyfleet/skywire/svc/sd"
)

// advertise lists app's port in the service discovery as a server of the
// type args names, registering it again at the pace the discovery asks
// for, until stop: then it deregisters it. A discovery that is down is
// retried; the entry comes back when it does.
func (v *Visor) advertise(app string, port uint16, args appproto.AdvertiseArgs) (func(), error) {
	if v.sd == nil {
		return nil, errors.New("advertise: this visor has no service discovery (service_discovery in its config)")
	}
	e := sd.Entry{Type: args.Type, PK: v.cfg.PK, Port: port, Version: buildinfo.Get().Version, Country: args.Country, Label: args.Label}
	if _, err := e.Sign(v.cfg.SK, time.Now()); err != nil {
		return nil, err // malformed: say so to the app now
	}
	log := v.log.With(zap.String("app", app), zap.String("type", args.Type))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		failing := false
		for {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			again, err := v.sd.Register(rctx, e)
			rcancel()
			switch {
			case err != nil && ctx.Err() == nil:
				if !failing {
					log.Warn("advertising in the service discovery", zap.Error(err))
				}
				failing, again = true, 5*time.Second
			case err == nil && failing:
				log.Info("advertised in the service discovery again")
				failing = false
			case err == nil:
				log.Debug("advertised in the service discovery", zap.Duration("again_in", again))
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(again):
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer dcancel()
			if err := v.sd.Deregister(dctx, e.Type, port); err != nil {
				log.Debug("deregistering from the service discovery", zap.Error(err))
			}
		})
	}, nil
}

func (v *Visor) registerServicesAPI() {
	admin.Handle(v.api, admin.ListServices, func(ctx context.Context, req admin.ServicesRequest) ([]admin.ServiceInfo, error) {
		if req.Type != sd.TypeVPN && req.Type != sd.TypeProxy && req.Type != sd.TypeVisor {
			return nil, admin.Errorf(admin.CodeBadRequest, "type %q: vpn, proxy or visor", req.Type)
		}
		if v.sd == nil {
			return nil, admin.Errorf(admin.CodeUnavailable, "this visor has no service discovery (service_discovery in its config)")
		}
		list, err := v.sd.List(ctx, req.Type, strings.ToUpper(req.Country))
		if err != nil {
			return nil, admin.Errorf(admin.CodeUnavailable, "the service discovery at %s: %v", v.cfg.ServiceDiscovery, err)
		}
		out := make([]admin.ServiceInfo, 0, len(list))
		for _, se := range list {
			e := se.Entry
			out = append(out, admin.ServiceInfo{Type: e.Type, PK: e.PK, Port: e.Port, Version: e.Version, Country: e.Country, Label: e.Label, LastSeen: se.Seen().UTC()})
		}
		if req.Ping {
			v.pingServices(ctx, out)
		}
		return out, nil
	})
}

// pingServices measures the round trip to each server over a route, a few
// at once, each within pingTimeout.
func (v *Visor) pingServices(ctx context.Context, list []admin.ServiceInfo) {
	const atOnce, pingTimeout = 8, 10 * time.Second
	slots := make(chan struct{}, atOnce)
	var wg sync.WaitGroup
	for i := range list {
		s := &list[i]
		if s.PK == v.cfg.PK {
			s.PingError = "this visor"
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			defer cancel()
			res, err := v.router.Ping(pctx, s.PK, 1, router.DialOptions{})
			switch {
			case err != nil:
				s.PingError = err.Error()
			case res == nil || len(res.RTTs) == 0:
				s.PingError = "no answer"
			default:
				s.LatencyMS = ms(res.RTTs[0])
			}
		}()
	}
	wg.Wait()
}
