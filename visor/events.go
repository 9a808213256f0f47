package visor

import (
	"context"
	"reflect"
	"time"

	"github.com/skyfleet/skywire/admin"
)

// eventInterval is how often a follower of the event stream samples the
// visor's state for changes in bytes, RTT and routes; transports coming up
// or going down and apps changing are sent at once.
const eventInterval = time.Second

// visorLogLines is how much of its own log a visor keeps in memory.
const visorLogLines = 2000

func (v *Visor) registerEventAPI() {
	logs := func(req admin.LogsRequest) int {
		if req.Lines <= 0 {
			return 100
		}
		return req.Lines
	}
	admin.Handle(v.api, admin.VisorLog, func(_ context.Context, req admin.LogsRequest) ([]string, error) {
		return v.logRing.Last(logs(req)), nil
	})
	admin.HandleStream(v.api, admin.FollowVisorLog, func(ctx context.Context, req admin.LogsRequest, send func(string) error) error {
		return v.logRing.Follow(ctx, logs(req), send)
	})
	admin.HandleStream(v.api, admin.FollowAppLogs, func(ctx context.Context, req admin.LogsRequest, send func(string) error) error {
		if err := v.apps.FollowLogs(ctx, req.Name, logs(req), send); err != nil {
			return appError(err)
		}
		return nil
	})
	admin.HandleStream(v.api, admin.Events, func(ctx context.Context, _ admin.Empty, send func(admin.Event) error) error {
		return v.followEvents(ctx, send)
	})
}

// followEvents sends the visor's state, then its changes, until ctx ends:
// at once when a transport comes or goes or an app changes, and sampled
// every eventInterval for the rest.
func (v *Visor) followEvents(ctx context.Context, send func(admin.Event) error) error {
	tps := map[string]admin.TransportInfo{}
	apps := map[string]admin.AppInfo{}
	routes := -1
	tick := time.NewTicker(eventInterval)
	defer tick.Stop()
	for {
		tpsChanged, appsChanged := v.tpm.Changed(), v.apps.Changed() // before reading: no change is missed
		now := time.Now()
		seen := map[string]bool{}
		for _, tp := range v.tpm.Transports() {
			info := v.transportInfo(tp)
			seen[info.ID] = true
			old, had := tps[info.ID]
			kind := admin.EventTransport
			switch {
			case !had:
				kind = admin.EventTransportUp
			case old.Sent == info.Sent && old.Received == info.Received && old.RTTMS == info.RTTMS:
				continue
			}
			tps[info.ID] = info
			if err := send(admin.Event{Time: now, Kind: kind, Transport: &info}); err != nil {
				return err
			}
		}
		for id, info := range tps {
			if !seen[id] {
				delete(tps, id)
				if err := send(admin.Event{Time: now, Kind: admin.EventTransportDown, Transport: &info}); err != nil {
					return err
				}
			}
		}
		for _, a := range v.apps.List() {
			info := appInfo(a)
			if old, had := apps[info.Name]; had && reflect.DeepEqual(old, info) {
				continue
			}
			apps[info.Name] = info
			if err := send(admin.Event{Time: now, Kind: admin.EventApp, App: &info}); err != nil {
				return err
			}
		}
		if n := len(v.router.Rules()); n != routes {
			routes = n
			if err := send(admin.Event{Time: now, Kind: admin.EventRoutes, Routes: n}); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-tpsChanged:
		case <-appsChanged:
		}
	}
}
