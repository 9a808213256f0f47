package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/internal/configfile"
	"github.com/skyfleet/skywire/svc/ar"
	"github.com/skyfleet/skywire/svc/dmsgdisc"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/rf"
	"github.com/skyfleet/skywire/svc/store"
	"github.com/skyfleet/skywire/svc/tpdisc"
	"github.com/skyfleet/skywire/visor"
)

// PortDmsgServer is the dmsg server's default port.
const PortDmsgServer = 8081

// storeEntries bounds each service's in-memory store.
const storeEntries = 1 << 20

// svcApp is `skywire svc`: the discovery services, each alone or all in one
// process.
func svcApp(e env) *ucli.App {
	port := func(p int) string { return ":" + strconv.Itoa(p) }
	return &ucli.App{
		Usage: "run the discovery services",
		Commands: []*ucli.Command{
			{
				Name:  "all",
				Usage: "every service in one process: a private network's infrastructure",
				Description: "Runs the dmsg discovery, a dmsg server, the transport discovery, the route finder and the\naddress resolver " +
					"(HTTP and UDP) on --host at their default ports. Point visors at them with\n" +
					"`skywire visor gen-config --svc HOST` (or -t for 127.0.0.1).",
				Flags: append([]ucli.Flag{
					&ucli.StringFlag{Name: "host", Value: "127.0.0.1", Usage: "address to listen on (0.0.0.0 for every interface)"},
					&ucli.StringFlag{Name: "public-host", Usage: "address visors dial the dmsg server at (default: --host)"},
					&ucli.StringFlag{Name: "sk-file", Usage: "the dmsg server's key file (made if missing; default: a new key each run)"},
					&ucli.IntFlag{Name: "dmsg-discovery-port", Value: visor.PortDmsgDiscovery},
					&ucli.IntFlag{Name: "transport-discovery-port", Value: visor.PortTransportDiscovery},
					&ucli.IntFlag{Name: "route-finder-port", Value: visor.PortRouteFinder},
					&ucli.IntFlag{Name: "address-resolver-port", Value: visor.PortAddressResolver, Usage: "TCP (HTTP) and UDP"},
					&ucli.IntFlag{Name: "dmsg-server-port", Value: PortDmsgServer},
				}, logFlags()...),
				Action: func(c *ucli.Context) error { return runAll(c, e) },
			},
			{
				Name:   "dmsg-discovery",
				Usage:  "the dmsg discovery: where dmsg servers and clients publish themselves",
				Flags:  append([]ucli.Flag{addrFlag(port(visor.PortDmsgDiscovery))}, logFlags()...),
				Action: func(c *ucli.Context) error { return runOne(c, e, "dmsg-discovery", dmsgDiscovery) },
			},
			{
				Name:   "transport-discovery",
				Usage:  "the transport discovery: which transports exist (signed by both edges)",
				Flags:  append([]ucli.Flag{addrFlag(port(visor.PortTransportDiscovery))}, logFlags()...),
				Action: func(c *ucli.Context) error { return runOne(c, e, "transport-discovery", transportDiscovery) },
			},
			{
				Name:   "address-resolver",
				Usage:  "the address resolver: stcpr addresses (HTTP) and sudph hole punching (UDP, same port)",
				Flags:  append([]ucli.Flag{addrFlag(port(visor.PortAddressResolver))}, logFlags()...),
				Action: func(c *ucli.Context) error { return runOne(c, e, "address-resolver", addressResolver) },
			},
			{
				Name:  "route-finder",
				Usage: "the route finder: k shortest paths over the transport discovery's graph",
				Flags: append([]ucli.Flag{
					addrFlag(port(visor.PortRouteFinder)),
					&ucli.StringFlag{Name: "transport-discovery", Value: "http://127.0.0.1" + port(visor.PortTransportDiscovery), Usage: "the transport discovery's URL"},
				}, logFlags()...),
				Action: func(c *ucli.Context) error {
					return runOne(c, e, "route-finder", func(ctx context.Context, addr string, log *zap.Logger) error {
						return routeFinder(ctx, addr, c.String("transport-discovery"), log)
					})
				},
			},
			{
				Name:  "dmsg-server",
				Usage: "a dmsg server: relays streams between dmsg clients",
				Flags: append([]ucli.Flag{
					addrFlag(port(PortDmsgServer)),
					&ucli.StringFlag{Name: "public-addr", Usage: "host:port clients dial (default: --addr, which must then name a host)"},
					&ucli.StringFlag{Name: "discovery", Value: "http://127.0.0.1" + port(visor.PortDmsgDiscovery), Usage: "the dmsg discovery's URL"},
					&ucli.StringFlag{Name: "sk-file", Usage: "key file (made if missing; default: a new key each run)"},
				}, logFlags()...),
				Action: func(c *ucli.Context) error {
					return runOne(c, e, "dmsg-server", func(ctx context.Context, addr string, log *zap.Logger) error {
						sk, err := serverKey(c.String("sk-file"), log)
						if err != nil {
							return err
						}
						return dmsgServer(ctx, addr, c.String("public-addr"), c.String("discovery"), sk, log)
					})
				},
			},
		},
	}
}

func addrFlag(def string) ucli.Flag {
	return &ucli.StringFlag{Name: "addr", Value: def, Usage: "host:port to listen on"}
}

// serviceFunc runs one service on addr until ctx ends.
type serviceFunc func(ctx context.Context, addr string, log *zap.Logger) error

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

func runOne(c *ucli.Context, e env, name string, run serviceFunc) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments", name)
	}
	log, done, err := serviceLogger(c, e)
	if err != nil {
		return err
	}
	defer done()
	ctx, stop := signalContext(c.Context, log)
	defer stop()
	return run(ctx, c.String("addr"), log.Named(name))
}

// serveHTTP listens on addr and serves h until ctx ends.
func serveHTTP(ctx context.Context, addr, name string, h http.Handler, log *zap.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	log.Info("serving", zap.String("addr", ln.Addr().String()))
	return httpauth.Serve(ctx, ln, h)
}

func dmsgDiscovery(ctx context.Context, addr string, log *zap.Logger) error {
	return serveHTTP(ctx, addr, "dmsg-discovery", dmsgdisc.NewServer(store.NewMemory(storeEntries), log), log)
}

func transportDiscovery(ctx context.Context, addr string, log *zap.Logger) error {
	return serveHTTP(ctx, addr, "transport-discovery", tpdisc.NewServer(store.NewMemory(storeEntries), log), log)
}

// addressResolver serves HTTP and UDP on the same port.
func addressResolver(ctx context.Context, addr string, log *zap.Logger) error {
	srv := ar.NewServer(store.NewMemory(storeEntries), log)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("address-resolver: listen on %s: %w", addr, err)
	}
	// IPv4 UDP on the same port: on a wildcard address the resolver then
	// answers from the address each packet came to (IP_PKTINFO).
	host, _, _ := net.SplitHostPort(addr)
	network := "udp4"
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		network = "udp"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	pc, err := net.ListenPacket(network, net.JoinHostPort(host, port))
	if err != nil {
		ln.Close()
		return fmt.Errorf("address-resolver: UDP on %s: %w", ln.Addr(), err)
	}
	log.Info("serving", zap.String("addr", ln.Addr().String()), zap.String("udp", pc.LocalAddr().String()))
	var wg sync.WaitGroup
	var udpErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		udpErr = srv.ServeUDP(ctx, pc)
	}()
	err = httpauth.Serve(ctx, ln, srv)
	wg.Wait()
	return errors.Join(err, udpErr)
}

func routeFinder(ctx context.Context, addr, tpd string, log *zap.Logger) error {
	srv := rf.NewServer(tpd, log)
	defer srv.Close()
	return serveHTTP(ctx, addr, "route-finder", srv, log)
}

func dmsgServer(ctx context.Context, addr, public, discovery string, sk cipher.SecKey, log *zap.Logger) error {
	srv, err := dmsg.NewServer(dmsg.ServerConfig{SK: sk, Discovery: discovery, PublicAddr: public, Log: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dmsg-server: listen on %s: %w", addr, err)
	}
	return srv.Serve(ctx, ln)
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
	host := c.String("host")
	public := c.String("public-host")
	if public == "" {
		public = host
	}
	if ip := net.ParseIP(public); ip != nil && ip.IsUnspecified() {
		return usagef("--public-host: visors cannot dial %s; give this machine's address", public)
	}
	sk, err := serverKey(c.String("sk-file"), log)
	if err != nil {
		return err
	}
	at := func(p int) string { return net.JoinHostPort(host, strconv.Itoa(p)) }
	url := func(p int) string { return "http://" + net.JoinHostPort(public, strconv.Itoa(p)) }
	dd, td, ra, ds, rfp := c.Int("dmsg-discovery-port"), c.Int("transport-discovery-port"), c.Int("address-resolver-port"), c.Int("dmsg-server-port"), c.Int("route-finder-port")
	ctx, stop := signalContext(c.Context, log)
	defer stop()

	type service struct {
		name, addr, url string
		run             func(ctx context.Context) error
	}
	services := []service{
		{"dmsg discovery", at(dd), url(dd), func(ctx context.Context) error {
			return dmsgDiscovery(ctx, at(dd), log.Named("dmsg-discovery"))
		}},
		{"transport discovery", at(td), url(td), func(ctx context.Context) error {
			return transportDiscovery(ctx, at(td), log.Named("transport-discovery"))
		}},
		{"route finder", at(rfp), url(rfp), func(ctx context.Context) error {
			return routeFinder(ctx, at(rfp), "http://"+at(td), log.Named("route-finder"))
		}},
		{"address resolver (HTTP+UDP)", at(ra), url(ra), func(ctx context.Context) error {
			return addressResolver(ctx, at(ra), log.Named("address-resolver"))
		}},
		{"dmsg server " + sk.PubKey().Short(), at(ds), net.JoinHostPort(public, strconv.Itoa(ds)), func(ctx context.Context) error {
			return dmsgServer(ctx, at(ds), net.JoinHostPort(public, strconv.Itoa(ds)), url(dd), sk, log.Named("dmsg-server"))
		}},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(services))
	for i, s := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = s.run(ctx); errs[i] != nil {
				cancel() // one service failing stops them all
			}
		}()
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tLISTENS ON\tVISORS USE")
	for _, s := range services {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.name, s.addr, s.url)
	}
	tw.Flush()
	fmt.Fprintf(e.stdout, "\nservice discovery: not in this build yet (docs/roadmap.md)\n"+
		"visor configs for this network: skywire visor gen-config --svc %s\nCtrl-C stops.\n", public)
	wg.Wait()
	return errors.Join(errs...)
}
