package visor

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/svc/sd"
	"github.com/skyfleet/skywire/transport"
)

// Intervals of the public-visor parts.
const (
	publicRecheck   = time.Minute      // a visor that was not reachable looks again
	autoconnectTick = 10 * time.Second // how often autoconnect counts its public peers
)

// runPublic lists this visor in the service discovery as a public visor
// while it runs, once the address the address resolver sees it bind stcpr
// from is one of this host's own: behind NAT, others could not dial it,
// and it is not listed (it says why and looks again each minute).
func (v *Visor) runPublic(ctx context.Context) error {
	var stcpr *transport.STCPRNet
	for _, n := range v.networks {
		if s, ok := n.(*transport.STCPRNet); ok {
			stcpr = s
		}
	}
	if stcpr == nil {
		v.log.Warn("transport.public: not listed as a public visor: it needs stcpr (transport.address_resolver)")
		return nil
	}
	log := v.log.Named("public")
	warned := ""
	for {
		wait := time.Second
		if seen := stcpr.Seen(); seen != "" {
			if ownAddress(seen) {
				stop, err := v.advertise("public visor", 0, appproto.AdvertiseArgs{Type: sd.TypeVisor})
				if err != nil {
					return err
				}
				log.Info("listed as a public visor", zap.String("stcpr", seen))
				<-ctx.Done()
				stop()
				return nil
			}
			if warned != seen {
				log.Warn("not listed as a public visor: the address resolver sees it at an address this host does not have (behind NAT?); checking again each minute", zap.String("seen", seen))
				warned = seen
			}
			wait = publicRecheck
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// ownAddress reports whether host:port's IP is one of this host's.
func ownAddress(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if own, ok := netip.AddrFromSlice(n.IP); ok && own.Unmap() == ip.Unmap() {
				return true
			}
		}
	}
	return false
}

// runAutoconnect keeps transports to up to autoconnect_count public visors
// the service discovery lists, dialling others in random order when some
// go (or refuse: a full public visor answers busy).
func (v *Visor) runAutoconnect(ctx context.Context) error {
	want := v.cfg.Transport.AutoconnectCount
	if want == 0 {
		want = DefaultAutoconnectCount
	}
	log := v.log.Named("autoconnect")
	wait := 2 * time.Second // the first look, once the visor has its transports up
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		case <-v.tpm.Changed():
		}
		wait = autoconnectTick
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		list, err := v.sd.List(lctx, sd.TypeVisor, "")
		cancel()
		if err != nil {
			log.Debug("listing public visors", zap.Error(err))
			continue
		}
		connected := map[cipher.PubKey]bool{}
		for _, tp := range v.tpm.Transports() {
			connected[tp.Remote()] = true
		}
		var have int
		var candidates []cipher.PubKey
		for _, se := range list {
			pk := se.Entry.PK
			switch {
			case pk == v.cfg.PK:
			case connected[pk]:
				have++
			default:
				candidates = append(candidates, pk)
			}
		}
		rand.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
		for _, pk := range candidates {
			if have >= want || ctx.Err() != nil {
				break
			}
			dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			tp, err := v.tpm.Dial(dctx, pk, "")
			cancel()
			if err != nil {
				log.Debug("a public visor refused or is unreachable", zap.String("pk", pk.Hex()), zap.Error(err))
				continue
			}
			log.Info("transport to a public visor", zap.String("pk", pk.Hex()), zap.String("type", string(tp.Type())))
			have++
		}
	}
}
