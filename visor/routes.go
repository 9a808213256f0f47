package visor

import (
	"context"
	"errors"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/router"
	"github.com/skyfleet/skywire/svc/rf"
	"github.com/skyfleet/skywire/transport"
)

// pathFinder adapts the route finder's client to the router.
type pathFinder struct{ c *rf.Client }

// pathsPerDial is how many paths a dial may try.
const pathsPerDial = 3

func (p pathFinder) Paths(ctx context.Context, src, dst cipher.PubKey, minHops int) ([][]router.Hop, error) {
	found, err := p.c.Paths(ctx, src, dst, minHops, pathsPerDial)
	if err != nil {
		return nil, err
	}
	out := make([][]router.Hop, len(found))
	for i, path := range found {
		for _, h := range path {
			out[i] = append(out[i], router.Hop{PK: h.PK, Type: transport.Type(h.Type)})
		}
	}
	return out, nil
}

// routeInfos lists the routing rules as the admin API shows them.
func (v *Visor) routeInfos() []admin.RuleInfo {
	out := []admin.RuleInfo{}
	for _, r := range v.router.Rules() {
		out = append(out, admin.RuleInfo{
			ID: r.ID, Kind: r.Kind, InRemote: r.InRemote, InType: r.InType, OutRemote: r.OutRemote,
			OutID: r.OutID, Local: r.Local, Remote: r.Remote, Pending: r.Pending, IdleSeconds: r.IdleSecs,
		})
	}
	return out
}

func (v *Visor) registerRouteAPI() {
	admin.Handle(v.api, admin.ListRoutes, func(context.Context, admin.Empty) ([]admin.RuleInfo, error) {
		return v.routeInfos(), nil
	})
	admin.Handle(v.api, admin.RemoveRoute, func(_ context.Context, req admin.RemoveRouteRequest) (admin.Empty, error) {
		if err := v.router.RemoveRule(req.ID); err != nil {
			return admin.Empty{}, admin.Errorf(admin.CodeNotFound, "%v", err)
		}
		return admin.Empty{}, nil
	})
	admin.Handle(v.api, admin.Ping, func(ctx context.Context, req admin.PingRequest) (admin.PingResult, error) {
		count := req.Count
		if count <= 0 {
			count = 4
		}
		res, err := v.router.Ping(ctx, req.PK, min(count, 100), router.DialOptions{MinHops: req.MinHops, Via: req.Via})
		if err != nil && res == nil {
			return admin.PingResult{}, admin.Errorf(routeErrorCode(err), "%v", err)
		}
		out := admin.PingResult{Hops: hopInfo(res.Hops, res.HopRTTs), SetupMS: ms(res.Setup)}
		for _, d := range res.RTTs {
			out.RTTsMS = append(out.RTTsMS, ms(d))
		}
		if err != nil {
			return out, admin.Errorf(admin.CodeUnavailable, "%v", err)
		}
		return out, nil
	})
	admin.Handle(v.api, admin.Bench, func(ctx context.Context, req admin.BenchRequest) (admin.BenchResult, error) {
		n := req.Bytes
		if n <= 0 {
			n = 64 << 20
		}
		res, err := v.router.Bench(ctx, req.PK, n, router.DialOptions{MinHops: req.MinHops})
		if err != nil {
			return admin.BenchResult{}, admin.Errorf(routeErrorCode(err), "%v", err)
		}
		return admin.BenchResult{
			Hops: hopInfo(res.Hops, nil), Bytes: res.Bytes, Seconds: res.Duration.Seconds(),
			MegabytesPerS: float64(res.Bytes) / res.Duration.Seconds() / 1e6,
		}, nil
	})
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func hopInfo(hops []router.Hop, rtts []time.Duration) []admin.HopInfo {
	out := make([]admin.HopInfo, len(hops))
	for i, h := range hops {
		out[i] = admin.HopInfo{PK: h.PK, Type: string(h.Type)}
		if i < len(rtts) {
			out[i].RTTMS = ms(rtts[i])
		}
	}
	return out
}

// routeErrorCode classifies a failed route for the caller.
func routeErrorCode(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return admin.CodeTimeout
	case errors.Is(err, router.ErrNoRoute):
		return admin.CodeNotFound
	case errors.Is(err, router.ErrRefused):
		return admin.CodeConflict
	}
	return admin.CodeUnavailable
}
