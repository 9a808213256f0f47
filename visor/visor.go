// Package visor is the skywire node: it owns the identity from its config,
// its dmsg client and transport manager, and serves the admin API (package
// admin) that `skywire cli` and hypervisors use to control it. The router
// and the app launcher attach here as they are built.
//
// Lifecycle: New checks the config and opens every socket (admin API,
// transport listeners), so that a bad config or a busy address fails before
// anything runs; Run serves until its context ends; Close releases what New
// took and is idempotent.
package visor

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/dmsgpty"
	"github.com/skyfleet/skywire/internal/buildinfo"
	"github.com/skyfleet/skywire/internal/configfile"
	"github.com/skyfleet/skywire/internal/logring"
	"github.com/skyfleet/skywire/internal/sdnotify"
	"github.com/skyfleet/skywire/router"
	"github.com/skyfleet/skywire/svc/ar"
	"github.com/skyfleet/skywire/svc/rf"
	"github.com/skyfleet/skywire/svc/sd"
	"github.com/skyfleet/skywire/svc/tpdisc"
	"github.com/skyfleet/skywire/transport"
	"github.com/skyfleet/skywire/visor/appserver"
)

// TokenFile is the name, in local_path, of the admin token a visor with a
// TCP cli_addr requires.
const TokenFile = "cli-token"

// shutdownGrace bounds how long admin calls in progress may run after Run's
// context ends.
const shutdownGrace = 3 * time.Second

// Options are the run-time inputs that are not in the config file.
type Options struct {
	// ConfigPath is the file the config came from. Relative paths in the
	// config are resolved against its directory; "" means the working
	// directory.
	ConfigPath string
	// Log receives the visor's logs. Nil means no logs.
	Log *zap.Logger
	// Executable runs the built-in apps; "" means this program
	// (os.Executable).
	Executable string
	// Level, if set, is the level of Log that a reload sets from log_level
	// (nil: the level is not the config's, e.g. a --log-level flag).
	Level *zap.AtomicLevel
}

// Visor is a running node.
type Visor struct {
	cfgMu      sync.Mutex // guards cfg's app entries while they are changed and saved
	cfg        *Config
	configPath string
	log        *zap.Logger
	localPath  string
	cliAddr    string // as listened on: a resolved socket path or host:port
	started    time.Time
	metrics    *metrics.Set                       // the visor's metrics (metrics.go)
	metricsLn  net.Listener                       // metrics_addr's, or nil
	hvs        atomic.Pointer[[]HypervisorConfig] // the hypervisors in effect
	relink     chan struct{}                      // the hypervisors changed
	reloadMu   sync.Mutex                         // one reload at a time
	level      *zap.AtomicLevel                   // the log level a reload may change (nil: set by a flag)
	linksMu    sync.Mutex
	links      map[cipher.PubKey]linkState // hypervisor links, for status
	haltMu     sync.Mutex
	halt       context.CancelFunc // ends Run (nil until Run starts)

	ln      net.Listener
	logRing *logring.Ring // the visor's own log lines
	api     *admin.Server
	cliAuth admin.Authorizer // cli_addr's: admin.Open on the unix socket, the token on TCP
	pipe    *admin.Pipe      // the admin API for a controller in this process (LocalClient)

	dmsg       *dmsg.Client // nil without dmsg.discovery
	tpd        *tpdisc.Client
	tpm        *transport.Manager
	router     *router.Router
	rf         *rf.Client // nil without routing.route_finder
	sd         *sd.Client // nil without service_discovery
	apps       *appserver.Server
	pty        *dmsgpty.Host // the remote shell's sessions
	exe        string        // runs the built-in apps
	networks   []io.Closer   // released by Close if Run never served them
	persistent map[transport.Persistent]bool

	closeOnce sync.Once
}

// New checks cfg and prepares the visor: the local_path directory and the
// admin listener. Call Run to serve, or Close to give up.
func New(cfg *Config, opts Options) (*Visor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config is not valid:\n%w", err)
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	configPath := opts.ConfigPath
	if configPath != "" {
		if abs, err := filepath.Abs(configPath); err == nil {
			configPath = abs
		}
	}
	dir := filepath.Dir(configPath)
	if configPath == "" {
		dir, _ = os.Getwd()
	}
	// The visor keeps its own log in memory too, for `cli visor log` and
	// the hypervisor, at the level its logger has.
	logRing := logring.New(visorLogLines)
	ringCore := zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), logring.NewWriter(logRing), zap.LevelEnablerFunc(log.Core().Enabled))
	log = log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, ringCore) }))
	v := &Visor{
		cfg:        cfg,
		configPath: configPath,
		logRing:    logRing,
		log:        log.With(zap.String("pk", cfg.PK.Hex())),
		localPath:  ResolvePath(dir, defaultString(cfg.LocalPath, "./local")),
		started:    time.Now(),
		relink:     make(chan struct{}, 1),
		level:      opts.Level,
	}
	hvs := slices.Clone(cfg.Hypervisors) // a reload replaces cfg's
	v.hvs.Store(&hvs)
	if err := os.MkdirAll(v.localPath, 0o700); err != nil {
		return nil, fmt.Errorf("local_path: %w", err)
	}

	network, address, err := admin.ParseAddr(cfg.CLIAddr)
	if err != nil {
		return nil, fmt.Errorf("cli_addr: %w", err)
	}
	token := ""
	if network == "unix" {
		address = ResolvePath(dir, address)
	} else {
		if token, err = loadOrCreateToken(filepath.Join(v.localPath, TokenFile)); err != nil {
			return nil, fmt.Errorf("cli_addr: %w", err)
		}
	}
	if v.ln, err = admin.Listen(address); err != nil {
		return nil, fmt.Errorf("cli_addr: %w", err)
	}
	v.cliAddr = address
	if network == "tcp" {
		v.cliAddr = v.ln.Addr().String()
	}
	if cfg.MetricsAddr != "" {
		if v.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			v.ln.Close()
			return nil, fmt.Errorf("metrics_addr: %w", err)
		}
	}
	v.api = admin.NewServer(v.log.Named("admin"))
	v.pipe = admin.NewPipe()
	v.cliAuth = admin.Open
	if token != "" {
		v.cliAuth = admin.Token(token)
	}
	v.pty = v.newPTYHost(dir)
	if err := v.initTransports(); err != nil {
		v.Close()
		return nil, err
	}
	exe := opts.Executable
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			v.Close()
			return nil, fmt.Errorf("finding this program for the built-in apps: %w", err)
		}
	}
	v.exe = exe
	if cfg.ServiceDiscovery != "" {
		v.sd = sd.NewClient(cfg.ServiceDiscovery, cfg.SK)
	}
	v.apps, err = appserver.New(appserver.Config{
		Addr: cfg.AppServerAddr, Router: v.router, PK: cfg.PK, Executable: exe,
		AppsPath: ResolvePath(dir, defaultString(cfg.AppsPath, "./apps")), LocalPath: v.localPath,
		Apps: appConfigs(cfg.Apps), Log: v.log.Named("apps"), Bypass: v.bypass, Advertise: v.advertise,
	})
	if err != nil {
		v.Close()
		return nil, err
	}
	v.registerAPI()
	return v, nil
}

// initTransports makes the dmsg client, the networks the config enables,
// and the transport manager.
func (v *Visor) initTransports() error {
	cfg := v.cfg
	var nets []transport.Network
	add := func(n interface {
		transport.Network
		io.Closer
	}) {
		nets = append(nets, n)
		v.networks = append(v.networks, n)
	}
	if cfg.STCP.LocalAddress != "" || len(cfg.STCP.PKTable) > 0 {
		n, err := transport.NewSTCP(cfg.SK, cfg.STCP.PKTable, cfg.STCP.LocalAddress, v.log.Named("stcp"))
		if err != nil {
			return fmt.Errorf("stcp.local_address: %w", err)
		}
		add(n)
	}
	if cfg.Transport.AddressResolver != "" {
		resolver := ar.NewClient(cfg.Transport.AddressResolver, cfg.SK)
		n, err := transport.NewSTCPR(cfg.SK, resolver, defaultString(cfg.Transport.STCPRAddr, ":0"), v.log.Named("stcpr"))
		if err != nil {
			return fmt.Errorf("transport.stcpr_addr: %w", err)
		}
		add(n)
		u, err := transport.NewSUDPH(cfg.SK, resolver, defaultString(cfg.Transport.SUDPHAddr, ":0"), v.log.Named("sudph"))
		if err != nil {
			return fmt.Errorf("transport.sudph_addr: %w", err)
		}
		add(u)
	}
	if cfg.Dmsg.Discovery != "" {
		c, err := dmsg.NewClient(dmsg.ClientConfig{SK: cfg.SK, Discovery: cfg.Dmsg.Discovery, SessionsCount: cfg.Dmsg.SessionsCount, TrustedServers: cfg.Dmsg.TrustedServers, Log: v.log.Named("dmsg")})
		if err != nil {
			return err
		}
		n, err := transport.NewDMSG(c)
		if err != nil {
			return err
		}
		v.dmsg = c
		add(n)
	}
	mcfg := transport.Config{SK: cfg.SK, Networks: nets, Log: v.log.Named("transport")}
	if cfg.Transport.Public {
		mcfg.MaxInbound = cmp.Or(cfg.Transport.MaxPublicPeers, DefaultMaxPublicPeers)
	}
	if cfg.Transport.Discovery != "" {
		v.tpd = tpdisc.NewClient(cfg.Transport.Discovery, cfg.SK)
		mcfg.Discovery = v.tpd
	}
	v.tpm = transport.NewManager(mcfg)
	rcfg := router.Config{SK: cfg.SK, Transports: v.tpm, MinHops: cfg.Routing.MinHops, Log: v.log.Named("router")}
	if cfg.Routing.RouteFinder != "" {
		v.rf = rf.NewClient(cfg.Routing.RouteFinder)
		rcfg.Paths = pathFinder{v.rf}
	}
	v.router = router.New(rcfg)
	v.keepUpLocked(cfg.Transport.Persistent)
	return nil
}

// Dmsg is the visor's dmsg client (nil without dmsg.discovery): a
// hypervisor in the visor's process accepts links on it.
func (v *Visor) Dmsg() *dmsg.Client { return v.dmsg }

// LocalClient is an admin client of this visor for a controller in the
// same process (its own hypervisor). Calls are answered while Run runs.
func (v *Visor) LocalClient() *admin.Client {
	return admin.NewClientFunc("this visor", v.pipe.Dial, "")
}

// PK is the visor's public key.
func (v *Visor) PK() cipher.PubKey { return v.cfg.PK }

// STCPAddr is the address stcp listens on ("" if it does not).
func (v *Visor) STCPAddr() string {
	for _, n := range v.networks {
		if s, ok := n.(*transport.STCPNet); ok && s.Addr() != nil {
			return s.Addr().String()
		}
	}
	return ""
}

// listening maps each network that accepts to its local address.
func (v *Visor) listening() map[string]string {
	out := map[string]string{}
	for _, n := range v.networks {
		if a, ok := n.(interface {
			Type() transport.Type
			Addr() net.Addr
		}); ok && a.Addr() != nil {
			out[string(a.Type())] = a.Addr().String()
		}
	}
	return out
}

// dmsgServers are the servers the dmsg client has sessions with.
func (v *Visor) dmsgServers() []cipher.PubKey {
	if v.dmsg == nil {
		return nil
	}
	return v.dmsg.Servers()
}

// AppServerAddr is the address the apps reach the visor at.
func (v *Visor) AppServerAddr() string { return v.apps.Addr() }

// CLIAddr is the address the admin API listens on (with the real port when
// cli_addr asked for port 0).
func (v *Visor) CLIAddr() string { return v.cliAddr }

// Run serves until ctx ends, then stops: admin calls in progress get a few
// seconds to finish, then transports and dmsg sessions close. It returns
// nil after a requested stop.
func (v *Visor) Run(ctx context.Context) error {
	defer v.Close()
	var types []string
	for _, t := range v.tpm.Types() {
		types = append(types, string(t))
	}
	v.log.Info("visor running",
		zap.String("version", buildinfo.Get().Version),
		zap.String("config", v.configPath),
		zap.String("cli_addr", v.cliAddr),
		zap.String("local_path", v.localPath),
		zap.Strings("transports", types))
	ctx, cancel := context.WithCancel(ctx)
	v.haltMu.Lock()
	v.halt = cancel
	v.haltMu.Unlock()
	var wg sync.WaitGroup
	// A part that fails while the visor runs takes the visor down, loudly:
	// no listener dies while the rest goes on as if it served.
	failed := make(chan error, 8) // one per part
	part := func(name string, run func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(ctx); err != nil && ctx.Err() == nil {
				v.log.Error("visor part failed: stopping the visor", zap.String("part", name), zap.NamedError("err", err))
				failed <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	if v.dmsg != nil {
		part("dmsg", v.dmsg.Run)
	}
	part("transports", v.tpm.Run)
	part("router", v.router.Run)
	part("apps", v.apps.Run)
	part("hypervisor links", v.linkHypervisors)
	if v.dmsg != nil {
		part("remote shell", v.servePTY)
	}
	if v.cfg.Transport.Public && v.sd != nil {
		part("public visor", v.runPublic)
	}
	if v.cfg.Transport.PublicAutoconnect && v.sd != nil {
		part("autoconnect", v.runAutoconnect)
	}
	part("in-process admin", func(ctx context.Context) error { return v.api.Serve(ctx, v.pipe, admin.Open, shutdownGrace) })
	if v.metricsLn != nil {
		part("metrics", v.serveMetrics)
	}
	// Under systemd (Type=notify): ready now, stopping when ctx ends, and
	// watchdog pings while the admin API answers.
	if sent, err := sdnotify.Notify(sdnotify.Ready); err != nil {
		v.log.Warn("telling systemd the visor is ready", zap.Error(err))
	} else if sent {
		v.log.Debug("told systemd: ready")
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		sdnotify.RunWatchdog(ctx, func(ctx context.Context) bool {
			_, err := admin.Call(ctx, v.LocalClient(), admin.GetInfo, admin.Empty{})
			return err == nil
		})
	}()
	context.AfterFunc(ctx, func() { sdnotify.Notify(sdnotify.Stopping) })
	err := v.api.Serve(ctx, v.ln, v.cliAuth, shutdownGrace)
	cancel()
	wg.Wait()
	select {
	case ferr := <-failed:
		err = ferr
	default:
	}
	v.log.Info("visor stopped")
	return err
}

// Close releases everything New took. It is safe to call more than once and
// after Run. Teardown order: the admin listener, then transport sockets.
func (v *Visor) Close() error {
	v.closeOnce.Do(func() {
		if err := v.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			v.log.Debug("closing admin listener", zap.NamedError("err", err))
		}
		v.pipe.Close()
		if v.metricsLn != nil {
			v.metricsLn.Close()
		}
		for _, n := range v.networks {
			n.Close()
		}
		if v.apps != nil {
			v.apps.Close()
		}
		v.pty.Close() // sessions through the admin API end with the visor
		if v.tpd != nil {
			v.tpd.Close()
		}
		if v.sd != nil {
			v.sd.Close()
		}
		if v.rf != nil {
			v.rf.Close()
		}
	})
	return nil
}

func (v *Visor) registerAPI() {
	v.metrics = v.newMetrics()
	v.api.HandleHTTP("GET /metrics", metricsHandler(v.metrics))
	v.healthHandlers(v.api)
	v.registerTransportAPI()
	v.registerRouteAPI()
	v.registerAppAPI()
	v.registerEventAPI()
	v.registerVPNAPI()
	v.registerServicesAPI()
	v.registerPTYAPI()
	admin.Handle(v.api, admin.Halt, func(context.Context, admin.Empty) (admin.Empty, error) {
		v.haltMu.Lock()
		halt := v.halt
		v.haltMu.Unlock()
		if halt == nil {
			return admin.Empty{}, &admin.Error{Code: admin.CodeUnavailable, Message: "the visor is not running yet"}
		}
		v.log.Info("halt requested over the admin API")
		halt() // the admin server shuts down gracefully: this answer goes out first
		return admin.Empty{}, nil
	})
	v.registerStatusAPI()
	v.registerReloadAPI()
	admin.Handle(v.api, admin.GetInfo, func(context.Context, admin.Empty) (admin.Info, error) {
		return v.info(), nil
	})
}

// loadOrCreateToken returns the admin token in path, creating it (random,
// mode 0600) on first use so that scripts keep working across restarts.
func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", fmt.Errorf("token file %s holds fewer than 32 characters: delete it to have a new one made", path)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read token: %w", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	tok := hex.EncodeToString(raw[:])
	err = configfile.WriteFile(path, []byte(tok+"\n"), configfile.Mode, false)
	if errors.Is(err, configfile.ErrExists) { // another visor made it meanwhile
		return loadOrCreateToken(path)
	}
	if err != nil {
		return "", err
	}
	return tok, nil
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
