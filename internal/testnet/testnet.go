// Package testnet runs a private Skywire network in one process: the
// discovery services (svc/suite) on loopback ports of their own, and N
// visors in a line — visor i has a transport to visor i+1 only, so routes
// between the ends are multi-hop. Tests use it, and so does `skywire demo`.
//
// Each visor is a real visor.Visor with its config file, admin socket and
// state under Config.Dir/<name>, controllable with `skywire cli --rpc`.
// Built-in apps run as Config.Executable (the skywire binary).
package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/suite"
	"github.com/skyfleet/skywire/svc/tpdisc"
	"github.com/skyfleet/skywire/visor"
)

// readyTimeout bounds how long Start waits for the line to carry a route.
const readyTimeout = 30 * time.Second

// Config configures a network.
type Config struct {
	// Dir holds the visors' configs, sockets and state (required; keep it
	// short: unix socket paths are limited to about 100 bytes).
	Dir string
	// Visors is how many visors (zero: 3).
	Visors int
	// Links are the transport types of the links visor i → i+1 ("stcp",
	// "stcpr", "sudph", "dmsg"; missing: stcp).
	Links []string
	// Apps, if set, gives visor i's apps (default: none).
	Apps func(i int, pks []cipher.PubKey) []visor.AppConfig
	// Hypervisors, if set, gives the keys of the hypervisors visor i trusts
	// (default: none).
	Hypervisors func(i int, pks []cipher.PubKey) []cipher.PubKey
	// Executable runs built-in apps (zero: this program).
	Executable string
	// Log receives every component's logs (nil: none).
	Log *zap.Logger
	// Unlinked leaves the visors without transports (and Start does not
	// wait for a route): many visors start fast.
	Unlinked bool
	// DmsgServers is how many dmsg servers the network has (zero: 1, the
	// services' own); the others run in this process too, each on its own
	// loopback port and listed in the dmsg discovery.
	DmsgServers int
	// SessionsCount is each visor's dmsg.sessions_count (zero: 1): with
	// several servers, visors spread over them at random.
	SessionsCount int
	// ReadyHops, if set, has Start wait for a route from the first visor to
	// visor ReadyHops instead of the last (a long line is longer than a
	// route may be).
	ReadyHops int
}

// linkers is how many transports Start sets up at once.
const linkers = 16

// Node is one visor of the network.
type Node struct {
	*visor.Visor
	Name       string
	ConfigPath string
	Config     *visor.Config

	cancel context.CancelFunc // stops this visor
	done   chan struct{}      // closed when its Run returned
}

// Network is a running network.
type Network struct {
	Suite *suite.Suite
	Nodes []*Node
	// DmsgServers are the network's dmsg servers other than the suite's.
	DmsgServers []*dmsg.Server

	ctx    context.Context
	cfg    Config
	log    *zap.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards errs
	errs   []error
}

func name(i int) string {
	if i < 26 {
		return string(rune('a' + i))
	}
	return fmt.Sprintf("v%d", i)
}

// Start runs the services and the visors, links them, and returns once a
// route from the first visor to the last carries a ping. ctx ending (or
// Close) stops everything.
func Start(ctx context.Context, cfg Config) (_ *Network, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("testnet: no directory")
	}
	if cfg.Visors == 0 {
		cfg.Visors = 3
	}
	if cfg.Visors < 2 {
		return nil, fmt.Errorf("testnet: %d visors: want at least 2", cfg.Visors)
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	// Every visor comes from 127.0.0.1: the per-address limits that keep
	// one host from taking a public service must fit the whole network.
	per := 16 * (cfg.Visors + 4)
	sessionsPerAddr := 2 * (cfg.Visors + 4)
	serverKeys := make([]cipher.SecKey, max(cfg.DmsgServers-1, 0))
	var trusted []cipher.PubKey
	for i := range serverKeys {
		_, serverKeys[i] = cipher.GenerateKeyPair()
		trusted = append(trusted, serverKeys[i].PubKey())
	}
	s, err := suite.New(suite.Config{Host: "127.0.0.1", Log: log.Named("svc"), TrustedDmsgServers: trusted,
		DmsgSessionsPerAddr: sessionsPerAddr, Limits: httpauth.ServerLimits{PerClient: max(per, httpauth.DefaultPerClient)}})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &Network{Suite: s, ctx: ctx, cfg: cfg, log: log, cancel: cancel}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.run("services", s.Run, ctx)
	for i, sk := range serverKeys {
		srv, err := dmsg.NewServer(dmsg.ServerConfig{SK: sk, Discovery: s.URL(suite.DmsgDiscovery), MaxSessionsPerAddr: sessionsPerAddr,
			Log: log.Named(fmt.Sprintf("dmsg-server-%d", i+2))})
		if err != nil {
			return nil, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		n.DmsgServers = append(n.DmsgServers, srv)
		n.run(fmt.Sprintf("dmsg server %d", i+2), func(ctx context.Context) error { return srv.Serve(ctx, ln) }, ctx)
	}
	if len(serverKeys) > 0 { // listed before visors pick theirs
		if err := n.waitServers(ctx, 1+len(serverKeys)); err != nil {
			return nil, err
		}
	}

	keys := make([]cipher.SecKey, cfg.Visors)
	pks := make([]cipher.PubKey, cfg.Visors)
	for i := range keys {
		pks[i], keys[i] = cipher.GenerateKeyPair()
	}
	// The last visor first: each one's stcp table names the next one's
	// bound address.
	n.Nodes = make([]*Node, cfg.Visors)
	for i := cfg.Visors - 1; i >= 0; i-- {
		c := visor.DefaultConfig(keys[i])
		c.Dmsg.Discovery = s.URL(suite.DmsgDiscovery)
		c.Transport.Discovery = s.URL(suite.TransportDiscovery)
		c.Transport.AddressResolver = s.URL(suite.AddressResolver)
		c.Routing.RouteFinder = s.URL(suite.RouteFinder)
		c.ServiceDiscovery = s.URL(suite.ServiceDiscovery)
		c.Dmsg.SessionsCount = max(cfg.SessionsCount, 1)
		c.STCP.LocalAddress = "127.0.0.1:0"
		c.Transport.STCPRAddr, c.Transport.SUDPHAddr = "127.0.0.1:0", "127.0.0.1:0"
		if i+1 < cfg.Visors {
			c.STCP.PKTable[pks[i+1]] = n.Nodes[i+1].STCPAddr()
		}
		nm := name(i)
		c.CLIAddr = filepath.Join(cfg.Dir, nm+".sock")
		c.LocalPath = filepath.Join(cfg.Dir, nm)
		c.AppsPath = filepath.Join(cfg.Dir, "apps")
		c.Apps = nil
		if cfg.Apps != nil {
			c.Apps = cfg.Apps(i, pks)
		}
		if cfg.Hypervisors != nil {
			for _, pk := range cfg.Hypervisors(i, pks) {
				c.Hypervisors = append(c.Hypervisors, visor.HypervisorConfig{PublicKey: pk})
			}
		}
		path := filepath.Join(cfg.Dir, nm+".json")
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, err
		}
		if err := c.Save(path); err != nil {
			return nil, err
		}
		v, err := visor.New(&c, visor.Options{ConfigPath: path, Log: log.Named("visor-" + nm), Executable: cfg.Executable})
		if err != nil {
			return nil, fmt.Errorf("visor %s: %w", nm, err)
		}
		n.Nodes[i] = &Node{Visor: v, Name: nm, ConfigPath: path, Config: &c}
	}
	for _, node := range n.Nodes {
		n.runNode(node)
	}
	if cfg.Unlinked {
		return n, nil
	}

	// A bound on a hang, not a measure: a big network under the race
	// detector, on a loaded machine, links slowly.
	wctx, wcancel := context.WithTimeout(ctx, readyTimeout+time.Duration(cfg.Visors)*time.Second)
	linking := time.Now()
	defer wcancel()
	sem := make(chan struct{}, linkers)
	errs := make(chan error, len(n.Nodes))
	var wg sync.WaitGroup
	for i := 0; i+1 < len(n.Nodes); i++ {
		typ := "stcp"
		if i < len(cfg.Links) && cfg.Links[i] != "" {
			typ = cfg.Links[i]
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := n.link(wctx, i, typ); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	var linkErrs []error
	for err := range errs {
		linkErrs = append(linkErrs, err)
	}
	if err := errors.Join(linkErrs...); err != nil {
		return nil, err
	}
	to := len(n.Nodes) - 1
	if cfg.ReadyHops > 0 {
		to = min(cfg.ReadyHops, to)
	}
	linked := time.Since(linking)
	if err := n.WaitRoute(wctx, 0, to); err != nil {
		return nil, fmt.Errorf("%d links up in %v, then: %w%s", len(n.Nodes)-1, linked.Round(time.Millisecond), err, n.unregistered(to))
	}
	return n, nil
}

// unregistered names the links among the first to+1 visors that the
// transport discovery does not list (why a route finder finds no path).
func (n *Network) unregistered(to int) string {
	_, sk := cipher.GenerateKeyPair()
	c := tpdisc.NewClient(n.Suite.URL(suite.TransportDiscovery), sk)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	entries, err := c.AllUnverified(ctx)
	if err != nil {
		return fmt.Sprintf(" (the transport discovery does not answer: %v)", err)
	}
	listed := map[[2]cipher.PubKey]bool{}
	for _, e := range entries {
		listed[e.Entry.Edges] = true
		listed[[2]cipher.PubKey{e.Entry.Edges[1], e.Entry.Edges[0]}] = true
	}
	var missing []string
	for i := 0; i < to && i+1 < len(n.Nodes); i++ {
		if !listed[[2]cipher.PubKey{n.Nodes[i].PK(), n.Nodes[i+1].PK()}] {
			missing = append(missing, n.Nodes[i].Name+"–"+n.Nodes[i+1].Name)
		}
	}
	return fmt.Sprintf(" (the transport discovery lists %d transports; not listed on the way: %v)", len(entries), missing)
}

// waitServers waits until the dmsg discovery lists want servers.
func (n *Network) waitServers(ctx context.Context, want int) error {
	_, sk := cipher.GenerateKeyPair()
	c := dmsgdisc.NewClient(n.Suite.URL(suite.DmsgDiscovery), sk)
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		list, err := c.Servers(ctx)
		if err == nil && len(list) >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the dmsg discovery lists %d of the %d dmsg servers (%v)", len(list), want, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// run runs fn in the background, recording its error.
func (n *Network) run(what string, fn func(context.Context) error, ctx context.Context) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := fn(ctx); err != nil {
			n.mu.Lock()
			n.errs = append(n.errs, fmt.Errorf("%s: %w", what, err))
			n.mu.Unlock()
		}
	}()
}

// runNode runs node's visor until Stop or the network's end.
func (n *Network) runNode(node *Node) {
	ctx, cancel := context.WithCancel(n.ctx)
	node.cancel, node.done = cancel, make(chan struct{})
	done := node.done
	n.run("visor "+node.Name, func(context.Context) error {
		defer close(done)
		return node.Run(ctx)
	}, ctx)
}

// Stop stops visor i and waits until it has.
func (n *Network) Stop(i int) {
	node := n.Nodes[i]
	node.cancel()
	<-node.done
	node.Close()
}

// Restart starts visor i again (after Stop) from its config file.
func (n *Network) Restart(i int) error {
	node := n.Nodes[i]
	c, err := visor.LoadConfig(node.ConfigPath)
	if err != nil {
		return err
	}
	v, err := visor.New(c, visor.Options{ConfigPath: node.ConfigPath, Log: n.log.Named("visor-" + node.Name), Executable: n.cfg.Executable})
	if err != nil {
		return fmt.Errorf("visor %s: %w", node.Name, err)
	}
	node.Visor, node.Config = v, c
	n.runNode(node)
	return nil
}

// Hypervisor is one entry of a visor's hypervisors list.
type Hypervisor struct {
	PK      cipher.PubKey
	Address string // a direct link's host:port ("": over dmsg)
}

// SetHypervisors restarts visor i with hs as its hypervisors.
func (n *Network) SetHypervisors(i int, hs ...Hypervisor) error {
	n.Stop(i)
	c, err := visor.LoadConfig(n.Nodes[i].ConfigPath)
	if err != nil {
		return err
	}
	c.Hypervisors = []visor.HypervisorConfig{}
	for _, h := range hs {
		c.Hypervisors = append(c.Hypervisors, visor.HypervisorConfig{PublicKey: h.PK, Address: h.Address})
	}
	if err := c.Save(n.Nodes[i].ConfigPath); err != nil {
		return err
	}
	return n.Restart(i)
}

// Client is an admin API client of node i.
func (n *Network) Client(i int) (*admin.Client, error) {
	return admin.NewClient(n.Nodes[i].CLIAddr(), "")
}

// link adds a transport of type typ from visor i to visor i+1 (retrying
// while the next visor is still publishing itself). It is persistent, as a
// user would make it: a link that drops (its peer silent for a while on a
// starved machine, a laptop that slept during the demo) is dialled again.
func (n *Network) link(ctx context.Context, i int, typ string) error {
	c, err := n.Client(i)
	if err != nil {
		return err
	}
	defer c.Close()
	req := admin.AddTransportRequest{PK: n.Nodes[i+1].PK(), Type: typ, TimeoutMS: 5000, Persistent: true}
	for {
		_, err := admin.Call(ctx, c, admin.AddTransport, req)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("linking %s to %s over %s: %w", n.Nodes[i].Name, n.Nodes[i+1].Name, typ, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitRoute pings from visor from to visor to until a route works (the
// route finder sees the transports once both edges registered them, at its
// next refresh).
func (n *Network) WaitRoute(ctx context.Context, from, to int) error {
	c, err := n.Client(from)
	if err != nil {
		return err
	}
	defer c.Close()
	dst := n.Nodes[to].PK()
	began := time.Now()
	var last error // the last answer that was not our own deadline
	for {
		_, err := admin.Call(ctx, c, admin.Ping, admin.PingRequest{PK: dst, Count: 1})
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no route from %s to %s in %v: %w", n.Nodes[from].Name, n.Nodes[to].Name, time.Since(began).Round(time.Millisecond), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops every visor and service and waits for them; it returns what
// went wrong while they ran.
func (n *Network) Close() error {
	n.cancel()
	for _, node := range n.Nodes {
		if node != nil {
			node.Close()
		}
	}
	n.Suite.Close()
	n.wg.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	return errors.Join(n.errs...)
}
