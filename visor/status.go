package visor

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/internal/buildinfo"
	"github.com/skyfleet/skywire/transport"
)

// serviceProbeTimeout bounds each service's probe in a status.
const serviceProbeTimeout = 3 * time.Second

func (v *Visor) registerStatusAPI() {
	admin.Handle(v.api, admin.GetStatus, func(ctx context.Context, _ admin.Empty) (admin.Status, error) {
		st := admin.Status{Info: v.info(), Services: v.probeServices(ctx)}
		st.Transports = []admin.TransportInfo{}
		for _, tp := range v.tpm.Transports() {
			st.Transports = append(st.Transports, v.transportInfo(tp))
		}
		st.Routes = v.routeInfos()
		st.Apps = []admin.AppInfo{}
		for _, i := range v.apps.List() {
			st.Apps = append(st.Apps, appInfo(i))
		}
		st.Hypervisors = []admin.HypervisorStatus{}
		v.linksMu.Lock()
		for _, h := range v.hypervisors() {
			l := v.links[h.PublicKey]
			st.Hypervisors = append(st.Hypervisors, admin.HypervisorStatus{PK: h.PublicKey, Address: h.Address, Connected: l.up, Since: l.since, LastError: l.err})
		}
		v.linksMu.Unlock()
		st.Reachability = v.reachability()
		st.PID = os.Getpid()
		return st, nil
	})
}

// services are the services the config names, by name.
func (v *Visor) services() []admin.ServiceStatus {
	var out []admin.ServiceStatus
	for _, s := range []struct{ name, url string }{
		{"dmsg_discovery", v.cfg.Dmsg.Discovery},
		{"transport_discovery", v.cfg.Transport.Discovery},
		{"address_resolver", v.cfg.Transport.AddressResolver},
		{"route_finder", v.cfg.Routing.RouteFinder},
		{"service_discovery", v.cfg.ServiceDiscovery},
	} {
		if s.url != "" {
			out = append(out, admin.ServiceStatus{Name: s.name, URL: s.url})
		}
	}
	return out
}

// probeServices asks each service's /health at once, with its latency.
func (v *Visor) probeServices(ctx context.Context) []admin.ServiceStatus {
	out := v.services()
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := &out[i]
			ctx, cancel := context.WithTimeout(ctx, serviceProbeTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/health", nil)
			if err != nil {
				s.Error = err.Error()
				return
			}
			began := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				s.Error = err.Error()
				return
			}
			resp.Body.Close()
			took := time.Since(began)
			s.LatencyMS = float64(took.Microseconds()) / 1000
			if d, err := http.ParseTime(resp.Header.Get("Date")); err == nil {
				s.ClockOffsetS = d.Sub(began.Add(took / 2)).Round(time.Second).Seconds()
			}
			if resp.StatusCode != http.StatusOK {
				s.Error = "answered " + resp.Status
				return
			}
			s.OK = true
		}()
	}
	wg.Wait()
	return out
}

// info describes the visor (GetInfo).
func (v *Visor) info() admin.Info {
	bi := buildinfo.Get()
	return admin.Info{
		PK:            v.cfg.PK,
		Version:       bi.Version,
		Build:         bi,
		StartedAt:     v.started.UTC(),
		UptimeSeconds: time.Since(v.started).Seconds(),
		ConfigPath:    v.configPath,
		LocalPath:     v.localPath,
		CLIAddr:       v.cliAddr,
		Listening:     v.listening(),
		DmsgServers:   v.dmsgServers(),
	}
}

// reachability is how the address resolver saw the stcpr and sudph sockets.
func (v *Visor) reachability() []admin.Reach {
	out := []admin.Reach{}
	listening := v.listening()
	for _, n := range v.networks {
		var r admin.Reach
		switch n := n.(type) {
		case *transport.STCPRNet:
			r = admin.Reach{Type: "stcpr", Seen: n.Seen()}
		case *transport.SUDPHNet:
			r = admin.Reach{Type: "sudph", Seen: n.Observed()}
		default:
			continue
		}
		r.Local = listening[r.Type]
		r.NAT = natKind(r.Local, r.Seen)
		out = append(out, r)
	}
	return out
}

// natKind compares where a socket listens with where it was seen.
func natKind(local, seen string) string {
	if seen == "" {
		return ""
	}
	if ownAddress(seen) {
		return "none"
	}
	_, lp, _ := net.SplitHostPort(local)
	_, sp, _ := net.SplitHostPort(seen)
	if lp != "" && lp == sp {
		return "port-preserving"
	}
	return "port-changing"
}
