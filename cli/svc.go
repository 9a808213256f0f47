package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/configfile"
	"github.com/skyfleet/skywire/svc/sd"
	"github.com/skyfleet/skywire/svc/store"
	"github.com/skyfleet/skywire/svc/suite"
	"github.com/skyfleet/skywire/visor"
)

// PortDmsgServer is the dmsg server's default port.
const PortDmsgServer = 8081

// svcApp is `skywire svc`: the discovery services, each alone or all in one
// process.
func svcApp(e env) *ucli.App {
	port := func(p int) string { return ":" + strconv.Itoa(p) }
	one := func(name suite.Name, defPort int, usage string, extra []ucli.Flag, cfg func(c *ucli.Context, sc *suite.Config, log *zap.Logger) error) *ucli.Command {
		return &ucli.Command{
			Name:  string(name),
			Usage: usage,
			Flags: append(append([]ucli.Flag{addrFlag(port(defPort)), storeFlag(), maxEntriesFlag()}, extra...), logFlags()...),
			Action: func(c *ucli.Context) error {
				return runOne(c, e, name, cfg)
			},
		}
	}
	return &ucli.App{
		Usage: "run the discovery services",
		Commands: []*ucli.Command{
			{
				Name:  "all",
				Usage: "every service in one process: a private network's infrastructure",
				Description: "Runs the dmsg discovery, a dmsg server, the transport discovery, the route finder, the\naddress resolver " +
					"(HTTP and UDP) and the service discovery on --host at their default ports. Point visors at them with\n" +
					"`skywire visor gen-config --svc HOST` (or -t for 127.0.0.1).",
				Flags: append([]ucli.Flag{
					&ucli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "address to listen on (0.0.0.0 for every interface)"},
					&ucli.StringFlag{Name: "public-host", Usage: "address visors dial the services at (default: --host)"},
					&ucli.StringFlag{Name: "sk-file", Usage: "the dmsg server's key file (made if missing; default: a new key each run)"},
					&ucli.IntFlag{Name: "dmsg-discovery-port", Value: visor.PortDmsgDiscovery},
					&ucli.IntFlag{Name: "transport-discovery-port", Value: visor.PortTransportDiscovery},
					&ucli.IntFlag{Name: "route-finder-port", Value: visor.PortRouteFinder},
					&ucli.IntFlag{Name: "address-resolver-port", Value: visor.PortAddressResolver, Usage: "TCP (HTTP) and UDP"},
					&ucli.IntFlag{Name: "service-discovery-port", Value: visor.PortServiceDiscovery},
					&ucli.IntFlag{Name: "dmsg-server-port", Value: PortDmsgServer},
					sdTTLFlag(),
					trustedServersFlag(),
					storeFlag(),
					maxEntriesFlag(),
				}, logFlags()...),
				Action: func(c *ucli.Context) error { return runAll(c, e) },
			},
			one(suite.DmsgDiscovery, visor.PortDmsgDiscovery, "the dmsg discovery: where dmsg servers and clients publish themselves",
				[]ucli.Flag{trustedServersFlag()},
				func(c *ucli.Context, sc *suite.Config, log *zap.Logger) error {
					var err error
					if sc.TrustedDmsgServers, err = trustedServers(c); err == nil && len(sc.TrustedDmsgServers) == 0 {
						log.Warn("no dmsg server is trusted: none can publish itself here (give --trusted-servers PK,…)")
					}
					return err
				}),
			one(suite.TransportDiscovery, visor.PortTransportDiscovery, "the transport discovery: which transports exist (signed by both edges)", nil, nil),
			one(suite.AddressResolver, visor.PortAddressResolver, "the address resolver: stcpr addresses (HTTP) and sudph hole punching (UDP, same port)", nil, nil),
			one(suite.RouteFinder, visor.PortRouteFinder, "the route finder: k shortest paths over the transport discovery's graph",
				[]ucli.Flag{&ucli.StringFlag{Name: "transport-discovery", Value: "http://127.0.0.1" + port(visor.PortTransportDiscovery), Usage: "the transport discovery's URL"}},
				func(c *ucli.Context, sc *suite.Config, _ *zap.Logger) error {
					sc.TransportDiscoveryURL = c.String("transport-discovery")
					return nil
				}),
			one(suite.ServiceDiscovery, visor.PortServiceDiscovery, "the service discovery: the VPN exits, proxies and public visors visors advertise (signed by their keys)",
				[]ucli.Flag{sdTTLFlag()},
				func(c *ucli.Context, sc *suite.Config, _ *zap.Logger) error {
					sc.SDEntryTTL = c.Duration("entry-ttl")
					return nil
				}),
			one(suite.DmsgServer, PortDmsgServer, "a dmsg server: relays streams between dmsg clients",
				[]ucli.Flag{
					&ucli.StringFlag{Name: "public-addr", Usage: "host:port clients dial (default: --addr, which must then name a host)"},
					&ucli.StringFlag{Name: "discovery", Value: "http://127.0.0.1" + port(visor.PortDmsgDiscovery), Usage: "the dmsg discovery's URL"},
					&ucli.StringFlag{Name: "sk-file", Usage: "key file (made if missing; default: a new key each run)"},
				},
				func(c *ucli.Context, sc *suite.Config, log *zap.Logger) error {
					sc.DmsgPublicAddr, sc.DmsgDiscoveryURL = c.String("public-addr"), c.String("discovery")
					var err error
					sc.SK, err = serverKey(c.String("sk-file"), log)
					return err
				}),
		},
	}
}

// sdTTLFlag is how long a service discovery entry lives unregistered.
func sdTTLFlag() ucli.Flag {
	return &ucli.DurationFlag{Name: "entry-ttl", Value: sd.EntryTTL, Usage: "how soon a service discovery entry not registered again disappears (visors register again at a third of it)"}
}

// trustedServersFlag names the dmsg servers a dmsg discovery lists (the
// suite's own server is always trusted).
func trustedServersFlag() ucli.Flag {
	return &ucli.StringSliceFlag{Name: "trusted-servers", Usage: "public keys of this network's dmsg servers (comma-separated); the discovery refuses server entries from any other key"}
}

func trustedServers(c *ucli.Context) ([]cipher.PubKey, error) {
	var out []cipher.PubKey
	for _, s := range c.StringSlice("trusted-servers") {
		pk, err := cipher.ParsePubKey(strings.TrimSpace(s))
		if err != nil {
			return nil, usagef("--trusted-servers: %v", err)
		}
		out = append(out, pk)
	}
	return out, nil
}

func addrFlag(def string) ucli.Flag {
	return &ucli.StringFlag{Name: "addr", Value: def, Usage: "host:port to listen on"}
}

// signalContext is ctx ended by SIGINT or SIGTERM (a second one kills).
func signalContext(ctx context.Context, log *zap.Logger) (context.Context, func()) {
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	out, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-sigCtx.Done():
			if ctx.Err() == nil {
				log.Info("signal received: stopping (signal again to force)")
			}
		case <-out.Done():
		}
		stop()
		cancel()
	}()
	return out, func() { cancel(); <-done }
}

// serviceLogger builds a service's logger; the returned func restores the
// standard library's logger (which library messages are sent to meanwhile).
func serviceLogger(c *ucli.Context, e env) (*zap.Logger, func(), error) {
	log, err := newLogger(e.stderr, logLevel(c, ""), c.String("log-format"))
	if err != nil {
		return nil, nil, err
	}
	restore := zap.RedirectStdLog(log.Named("lib"))
	return log, func() { log.Sync(); restore() }, nil
}

// runOne runs one service on --addr.
func runOne(c *ucli.Context, e env, name suite.Name, configure func(c *ucli.Context, sc *suite.Config, log *zap.Logger) error) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments", name)
	}
	host, portText, err := net.SplitHostPort(c.String("addr"))
	if err != nil {
		return usagef("--addr: %v", err)
	}
	p, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return usagef("--addr: port %q is not a number", portText)
	}
	log, done, err := serviceLogger(c, e)
	if err != nil {
		return err
	}
	defer done()
	limit, err := maxEntries(c)
	if err != nil {
		return err
	}
	sc := suite.Config{Host: host, Ports: map[suite.Name]int{name: int(p)}, Only: []suite.Name{name}, Log: log, Store: c.String("store"), StoreEntries: limit}
	if configure != nil {
		if err := configure(c, &sc, log); err != nil {
			return err
		}
	}
	s, err := suite.New(sc)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(c.Context, log)
	defer stop()
	return s.Run(ctx)
}

// serverKey reads the key in path, making it (mode 0600) if missing; with
// no path, a new key for this run.
func serverKey(path string, log *zap.Logger) (cipher.SecKey, error) {
	if path == "" {
		_, sk := cipher.GenerateKeyPair()
		log.Info("using a new key for this run (give --sk-file to keep one)", zap.String("pk", sk.PubKey().Hex()))
		return sk, nil
	}
	b, err := os.ReadFile(path)
	if err == nil {
		return cipher.ParseSecKey(strings.TrimSpace(string(b)))
	}
	if !errors.Is(err, os.ErrNotExist) {
		return cipher.SecKey{}, err
	}
	_, sk := cipher.GenerateKeyPair()
	if err := configfile.WriteFile(path, []byte(sk.Hex()+"\n"), configfile.Mode, false); err != nil {
		return cipher.SecKey{}, err
	}
	log.Info("made a new key file", zap.String("path", path), zap.String("pk", sk.PubKey().Hex()))
	return sk, nil
}

// runAll runs every service in this process.
func runAll(c *ucli.Context, e env) error {
	if c.NArg() > 0 {
		return usagef("all takes no arguments")
	}
	log, done, err := serviceLogger(c, e)
	if err != nil {
		return err
	}
	defer done()
	public := c.String("public-host")
	if public == "" {
		public = c.String("host")
	}
	if ip := net.ParseIP(public); ip != nil && ip.IsUnspecified() {
		return usagef("--public-host: visors cannot dial %s; give this machine's address", public)
	}
	sk, err := serverKey(c.String("sk-file"), log)
	if err != nil {
		return err
	}
	trusted, err := trustedServers(c)
	if err != nil {
		return err
	}
	limit, err := maxEntries(c)
	if err != nil {
		return err
	}
	s, err := suite.New(suite.Config{
		Host: c.String("host"), PublicHost: public, SK: sk, Log: log, TrustedDmsgServers: trusted, SDEntryTTL: c.Duration("entry-ttl"), Store: c.String("store"), StoreEntries: limit,
		Ports: map[suite.Name]int{
			suite.DmsgDiscovery:      c.Int("dmsg-discovery-port"),
			suite.TransportDiscovery: c.Int("transport-discovery-port"),
			suite.RouteFinder:        c.Int("route-finder-port"),
			suite.AddressResolver:    c.Int("address-resolver-port"),
			suite.ServiceDiscovery:   c.Int("service-discovery-port"),
			suite.DmsgServer:         c.Int("dmsg-server-port"),
		},
	})
	if err != nil {
		return err
	}
	ctx, stop := signalContext(c.Context, log)
	defer stop()
	printServices(e.stdout, s)
	fmt.Fprintf(e.stdout, "\nvisor configs for this network: skywire visor gen-config --svc %s\nCtrl-C stops.\n", public)
	return s.Run(ctx)
}

// printServices shows where each service listens and what visors use.
func printServices(w io.Writer, s *suite.Suite) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tLISTENS ON\tVISORS USE")
	for _, n := range s.Names() {
		name := string(n)
		switch n {
		case suite.AddressResolver:
			name += " (HTTP+UDP)"
		case suite.DmsgServer:
			name += " " + s.DmsgServerPK().Short()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, s.Addr(n), s.URL(n))
	}
	tw.Flush()
}

// storeFlag is --store: where the services keep their entries.
func storeFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "store", Value: "memory", EnvVars: []string{"SKYWIRE_SVC_STORE"}, Usage: store.SpecUsage}
}

// maxEntriesFlag bounds each service's store.
func maxEntriesFlag() ucli.Flag {
	return &ucli.IntFlag{Name: "max-entries", Value: suite.StoreEntries, Usage: "the most entries each service keeps; past it new visors are refused (503, \"full\") while those registered go on"}
}

// maxEntries reads --max-entries.
func maxEntries(c *ucli.Context) (int, error) {
	n := c.Int("max-entries")
	if n < 1 {
		return 0, usagef("--max-entries %d: want at least 1", n)
	}
	return n, nil
}
