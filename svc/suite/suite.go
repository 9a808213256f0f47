// Package suite runs the discovery services — dmsg discovery, transport
// discovery, route finder, address resolver (HTTP and UDP), service
// discovery and a dmsg server — alone or all in one process. `skywire svc …`, `skywire demo` and
// the in-process test network use it.
//
// New binds every listener first (port 0 picks a free one), so the
// addresses are known before anything runs and a busy port fails at once;
// Run serves until its context ends; one service failing stops the rest.
package suite

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/svc/ar"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/rf"
	"github.com/skyfleet/skywire/svc/sd"
	"github.com/skyfleet/skywire/svc/store"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// Name names a service.
type Name string

// The services.
const (
	DmsgDiscovery      Name = "dmsg-discovery"
	TransportDiscovery Name = "transport-discovery"
	RouteFinder        Name = "route-finder"
	AddressResolver    Name = "address-resolver"
	DmsgServer         Name = "dmsg-server"
	ServiceDiscovery   Name = "service-discovery"
)

// All is every service, in the order they start.
var All = []Name{DmsgDiscovery, TransportDiscovery, RouteFinder, AddressResolver, ServiceDiscovery, DmsgServer}

// StoreEntries bounds each service's store.
const StoreEntries = 1 << 20

// Config configures a suite.
type Config struct {
	// Host is the address to listen on (zero: every interface).
	Host string
	// PublicHost is the address visors reach the services at (zero: Host;
	// a dmsg server needs one that is not a wildcard, or DmsgPublicAddr).
	PublicHost string
	// Ports are the services' ports; a missing one or 0 picks a free port.
	Ports map[Name]int
	// Only lists the services to run (nil: All).
	Only []Name
	// DmsgDiscoveryURL is where a dmsg server publishes itself when the
	// suite has no dmsg discovery (zero: the suite's).
	DmsgDiscoveryURL string
	// TransportDiscoveryURL is what a route finder reads when the suite has
	// no transport discovery (zero: the suite's).
	TransportDiscoveryURL string
	// DmsgPublicAddr is the host:port clients dial the dmsg server at
	// (zero: PublicHost and the bound port).
	DmsgPublicAddr string
	// SK is the dmsg server's key (zero: a new one).
	SK cipher.SecKey
	// TrustedDmsgServers are the dmsg servers (other than the suite's own,
	// always trusted) whose entries the dmsg discovery lists.
	TrustedDmsgServers []cipher.PubKey
	// Limits bound what one client can hold of the HTTP services (zero:
	// httpauth's defaults).
	Limits httpauth.ServerLimits
	// DmsgSessionsPerAddr bounds the dmsg server's sessions from one
	// address (zero: dmsg's default, 32). A network of many visors on one
	// host (a test, the demo) needs more.
	DmsgSessionsPerAddr int
	// SDEntryTTL is how long a service discovery entry lives without a new
	// registration (zero: sd.EntryTTL).
	SDEntryTTL time.Duration
	// Store is where the services keep their entries (store.Open's spec:
	// "memory", the zero value, or "bbolt:PATH").
	Store string
	// StoreEntries bounds each service's entries (zero: StoreEntries).
	StoreEntries int
	Log          *zap.Logger
}

// Suite is a set of bound services.
type Suite struct {
	cfg     Config
	public  string
	lns     map[Name]net.Listener
	udp     net.PacketConn // the address resolver's
	rf      *rf.Server
	dmsg    *dmsg.Server
	stores  store.Stores         // nil until New opened them
	st      map[Name]store.Store // each storing service's
	metrics *metrics.Set         // the process's (metrics.go), made by Run
	closed  sync.Once
}

// New binds the services' listeners.
func New(cfg Config) (s *Suite, err error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Only == nil {
		cfg.Only = All
	}
	s = &Suite{cfg: cfg, public: cfg.PublicHost, lns: map[Name]net.Listener{}}
	if s.public == "" {
		s.public = cfg.Host
	}
	wildcard := s.public == ""
	if ip := net.ParseIP(s.public); ip != nil && ip.IsUnspecified() {
		wildcard = true
	}
	if wildcard {
		s.public = "127.0.0.1"
		if slices.Contains(cfg.Only, DmsgServer) && cfg.DmsgPublicAddr == "" {
			return nil, errors.New("dmsg-server: clients cannot dial a wildcard address: give the address they reach this machine at")
		}
	}
	made := s // the return statements below set s to nil on failure
	defer func() {
		if err != nil {
			made.Close()
		}
	}()
	for _, n := range cfg.Only {
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Ports[n]))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: listen on %s: %w", n, addr, err)
		}
		s.lns[n] = ln
		if n == AddressResolver {
			// IPv4 UDP on the same port: on a wildcard address the resolver
			// answers from the address each packet came to (IP_PKTINFO).
			network := "udp4"
			if ip := net.ParseIP(cfg.Host); ip != nil && ip.To4() == nil {
				network = "udp"
			}
			if s.udp, err = net.ListenPacket(network, ln.Addr().String()); err != nil {
				return nil, fmt.Errorf("%s: UDP on %s: %w", n, ln.Addr(), err)
			}
		}
	}
	if s.stores, err = store.Open(cfg.Store); err != nil {
		return nil, err
	}
	s.st = map[Name]store.Store{}
	for _, n := range []Name{DmsgDiscovery, TransportDiscovery, AddressResolver, ServiceDiscovery} {
		if s.has(n) {
			if s.st[n], err = s.stores.Store(string(n), cmp.Or(cfg.StoreEntries, StoreEntries)); err != nil {
				return nil, err
			}
		}
	}
	if s.has(RouteFinder) {
		tpd := cfg.TransportDiscoveryURL
		if tpd == "" {
			if !s.has(TransportDiscovery) {
				return nil, errors.New("route-finder: no transport discovery to read")
			}
			tpd = "http://" + s.lns[TransportDiscovery].Addr().String()
		}
		s.rf = rf.NewServer(tpd, cfg.Log.Named(string(RouteFinder)))
	}
	if s.has(DmsgServer) {
		disc := cfg.DmsgDiscoveryURL
		if disc == "" {
			if !s.has(DmsgDiscovery) {
				return nil, errors.New("dmsg-server: no dmsg discovery to publish to")
			}
			disc = "http://" + s.lns[DmsgDiscovery].Addr().String()
		}
		if cfg.SK.IsZero() {
			_, cfg.SK = cipher.GenerateKeyPair()
			s.cfg.SK = cfg.SK
		}
		s.dmsg, err = dmsg.NewServer(dmsg.ServerConfig{SK: cfg.SK, Discovery: disc, PublicAddr: s.URL(DmsgServer), MaxSessionsPerAddr: cfg.DmsgSessionsPerAddr, Log: cfg.Log.Named(string(DmsgServer))})
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *Suite) has(n Name) bool { return s.lns[n] != nil }

// Names lists the suite's services, in start order.
func (s *Suite) Names() []Name {
	var out []Name
	for _, n := range All {
		if s.has(n) {
			out = append(out, n)
		}
	}
	return out
}

// Addr is the address a service listens on ("" if the suite lacks it).
func (s *Suite) Addr(n Name) string {
	if !s.has(n) {
		return ""
	}
	return s.lns[n].Addr().String()
}

// URL is where visors reach a service: an http:// URL, or host:port for the
// dmsg server ("" if the suite lacks it).
func (s *Suite) URL(n Name) string {
	if !s.has(n) {
		return ""
	}
	_, port, _ := net.SplitHostPort(s.Addr(n))
	hp := net.JoinHostPort(s.public, port)
	if n == DmsgServer {
		if s.cfg.DmsgPublicAddr != "" {
			return s.cfg.DmsgPublicAddr
		}
		return hp
	}
	return "http://" + hp
}

// DmsgServerPK is the dmsg server's public key (zero without one).
func (s *Suite) DmsgServerPK() cipher.PubKey {
	if s.dmsg == nil {
		return cipher.PubKey{}
	}
	return s.cfg.SK.PubKey()
}

// Run serves every service until ctx ends or one fails.
func (s *Suite) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer s.Close()
	log := s.cfg.Log
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	run := func(n Name, addr string, serve func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log.Info("serving", zap.String("service", string(n)), zap.String("addr", addr))
			if err := serve(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", n, err))
				mu.Unlock()
				cancel() // one service failing stops them all
			}
		}()
	}
	s.metrics = s.newMetrics()
	httpSvc := func(n Name, h http.Handler) {
		h = s.observed(n, h, s.st[n])
		run(n, s.Addr(n), func() error { return httpauth.ServeLimited(ctx, s.lns[n], h, s.cfg.Limits) })
	}
	for _, n := range s.Names() {
		switch n {
		case DmsgDiscovery:
			dd := dmsgdisc.NewServer(s.st[n], log.Named(string(n)))
			dd.TrustServers(s.cfg.TrustedDmsgServers...)
			if s.dmsg != nil {
				dd.TrustServers(s.dmsg.PK())
			}
			httpSvc(n, dd)
		case TransportDiscovery:
			httpSvc(n, tpdisc.NewServer(s.st[n], log.Named(string(n))))
		case RouteFinder:
			httpSvc(n, s.rf)
		case AddressResolver:
			srv := ar.NewServer(s.st[n], log.Named(string(n)))
			httpSvc(n, srv)
			run(n+" (UDP)", s.udp.LocalAddr().String(), func() error { return srv.ServeUDP(ctx, s.udp) })
		case ServiceDiscovery:
			srv := sd.NewServer(s.st[n], log.Named(string(n)))
			if s.cfg.SDEntryTTL > 0 {
				srv.TTL = s.cfg.SDEntryTTL
			}
			httpSvc(n, srv)
		case DmsgServer:
			run(n, s.Addr(n), func() error { return s.dmsg.Serve(ctx, s.lns[n]) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close releases the listeners and the stores (Run does too).
func (s *Suite) Close() error {
	s.closed.Do(func() {
		if s.stores != nil {
			s.stores.Close()
		}
	})
	for _, ln := range s.lns {
		ln.Close()
	}
	if s.udp != nil {
		s.udp.Close()
	}
	if s.rf != nil {
		s.rf.Close()
	}
	return nil
}
