package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
	"github.com/skyfleet/skywire/visor"
)

const defaultVisorConfig = "skywire-config.json"

// visorApp is `skywire visor` (also `skywire-visor`).
func visorApp(e env) *ucli.App {
	return &ucli.App{
		Usage:     "run a visor, the network node",
		UsageText: "skywire visor [FILE]\n   skywire visor run -c FILE\n   skywire visor gen-config [-o FILE] [-t] …",
		ArgsUsage: "[config file]",
		Flags:     runFlags(),
		Action:    func(c *ucli.Context) error { return runVisor(c, e) },
		Commands: []*ucli.Command{
			{
				Name:      "run",
				Usage:     "run the visor from a config file",
				ArgsUsage: "[config file]",
				Flags:     runFlags(),
				Action:    func(c *ucli.Context) error { return runVisor(c, e) },
			},
			visorGenConfigCommand(e),
		},
	}
}

func runFlags() []ucli.Flag {
	return append([]ucli.Flag{
		&ucli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"SKYWIRE_CONFIG"}, Usage: "config file (or give it as the argument; default " + defaultVisorConfig + ", else " + visor.SystemConfigPath + " if that exists)", Value: defaultVisorConfig},
	}, logFlags()...)
}

// configArg is the config file of a run command: -c FILE or the one
// argument (not both, unless they agree).
func configArg(c *ucli.Context) (string, error) {
	path := c.String("config")
	switch c.NArg() {
	case 0:
		if !c.IsSet("config") && os.Getenv("SKYWIRE_CONFIG") == "" {
			// No file here but the system service's: that one.
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				if _, err := os.Stat(visor.SystemConfigPath); err == nil {
					path = visor.SystemConfigPath
				}
			}
		}
	case 1:
		if c.IsSet("config") && c.String("config") != c.Args().First() {
			return "", usagef("two config files given: -c %s and %s", c.String("config"), c.Args().First())
		}
		path = c.Args().First()
	default:
		return "", usagef("one config file, please; got %d arguments", c.NArg())
	}
	return path, nil
}

func runVisor(c *ucli.Context, e env) error {
	path, err := configArg(c)
	if err != nil {
		return err
	}
	cfg, err := visor.LoadConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w\ncreate one with `skywire visor gen-config -o %s` (add -t to use services on this machine)", err, path)
	}
	if err != nil {
		return err
	}
	log, level, done, err := runLeveledLogger(c, e, cfg.LogLevel)
	if err != nil {
		return err
	}
	defer done()
	v, err := visor.New(cfg, visor.Options{ConfigPath: path, Log: log.Named("visor"), Level: level})
	if err != nil {
		return err
	}
	ctx, stop := signalContext(c.Context, log)
	defer stop()
	stopHUP := reloadOnHUP(ctx, v, log)
	defer stopHUP()
	if cfg.Hypervisor == nil {
		return v.Run(ctx)
	}
	// The visor is its own hypervisor: both run until either stops.
	h, err := hypervisor.New(localHypervisorConfig(cfg), hypervisor.Options{ConfigPath: path, Log: log.Named("hypervisor"),
		Dmsg: v.Dmsg(), Local: &hypervisor.LocalVisor{PK: cfg.PK, Client: v.LocalClient()}})
	if err != nil {
		v.Close()
		return fmt.Errorf("hypervisor: %w", err)
	}
	announceHypervisor(e.stderr, h)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hdone := make(chan error, 1)
	go func() {
		err := h.Run(ctx)
		cancel()
		hdone <- err
	}()
	err = v.Run(ctx)
	cancel()
	if herr := <-hdone; herr != nil && err == nil {
		err = fmt.Errorf("hypervisor: %w", herr)
	}
	return err
}

// localHypervisorConfig is the config of the hypervisor a visor serves
// itself: the visor's key, the UI settings of its "hypervisor" block.
func localHypervisorConfig(cfg *visor.Config) *hypervisor.Config {
	hc := hypervisor.DefaultConfig(cfg.SK)
	h := cfg.Hypervisor
	hc.HTTPAddr, hc.DBPath = h.HTTPAddr, h.DBPath
	hc.EnableTLS, hc.TLSCertFile, hc.TLSKeyFile = h.EnableTLS, h.TLSCertFile, h.TLSKeyFile
	hc.LogLevel = cfg.LogLevel
	return &hc
}

// visorGenConfigCommand is `skywire visor gen-config`, also reachable as
// `skywire cli visor gen-config`.
func visorGenConfigCommand(e env) *ucli.Command {
	flags := append(genConfigFlags(defaultVisorConfig),
		&ucli.StringSliceFlag{Name: "hypervisor-pks", Usage: "public keys of hypervisors that may control this visor (comma-separated)"},
		&ucli.BoolFlag{Name: "hypervisor", Aliases: []string{"i"}, Usage: "make the visor its own hypervisor: it serves the web UI on 127.0.0.1:8000 too"},
		&ucli.StringFlag{Name: "cli-addr", Usage: "admin API address: unix socket path or host:port", Value: visor.DefaultConfig(cipher.SecKey{}).CLIAddr},
		&ucli.StringFlag{Name: "stcp-addr", Usage: `stcp.local_address ("" disables stcp listening)`, Value: ":7777"},
		&ucli.StringFlag{Name: "local-path", Usage: "state directory (relative to the config file)", Value: "./local"},
		&ucli.StringFlag{Name: "app-server-addr", Usage: "address apps reach the visor on (port 0: any free port)", Value: "127.0.0.1:0"},
		&ucli.StringFlag{Name: "dmsg-discovery", Usage: "dmsg discovery `URL` (overrides -t/--svc)"},
		&ucli.StringFlag{Name: "transport-discovery", Usage: "transport discovery `URL` (overrides -t/--svc)"},
		&ucli.StringFlag{Name: "address-resolver", Usage: "address resolver `URL` (overrides -t/--svc)"},
		&ucli.StringFlag{Name: "route-finder", Usage: "route finder `URL` (overrides -t/--svc)"},
		&ucli.StringFlag{Name: "service-discovery", Usage: "service discovery `URL` (overrides -t/--svc)"},
		&ucli.BoolFlag{Name: "system", Usage: "a config for the system service: -o " + visor.SystemConfigPath + ", --cli-addr " + visor.SystemCLIAddr + ", --local-path " + visor.SystemLocalPath + " (unless given)"},
	)
	return &ucli.Command{
		Name:  "gen-config",
		Usage: "write a new visor config with a fresh key",
		Description: "Writes a visor config (mode 0600). An existing file is never touched unless -f (the old one is\n" +
			"kept as FILE.bak) or -r (replace it, keeping its keys) is given. -n prints instead of writing.",
		Flags: flags,
		Action: func(c *ucli.Context) error {
			if c.Bool("system") {
				for flag, v := range map[string]string{"output": visor.SystemConfigPath, "cli-addr": visor.SystemCLIAddr, "local-path": visor.SystemLocalPath} {
					if !c.IsSet(flag) {
						c.Set(flag, v)
					}
				}
			}
			return genConfig(c, e, func(sk cipher.SecKey, host string) (checkable, error) {
				cfg := visor.DefaultConfig(sk)
				if host != "" {
					cfg.UseServices(host)
				}
				for _, s := range c.StringSlice("hypervisor-pks") {
					pk, err := cipher.ParsePubKey(s)
					if err != nil {
						return nil, usagef("--hypervisor-pks: %v", err)
					}
					cfg.Hypervisors = append(cfg.Hypervisors, visor.HypervisorConfig{PublicKey: pk})
				}
				for flag, field := range map[string]*string{
					"dmsg-discovery": &cfg.Dmsg.Discovery, "transport-discovery": &cfg.Transport.Discovery,
					"address-resolver": &cfg.Transport.AddressResolver, "route-finder": &cfg.Routing.RouteFinder,
					"service-discovery": &cfg.ServiceDiscovery,
				} {
					if c.IsSet(flag) {
						*field = c.String(flag)
					}
				}
				if c.Bool("hypervisor") {
					cfg.Hypervisor = visor.DefaultLocalHypervisor()
				}
				cfg.CLIAddr = c.String("cli-addr")
				cfg.STCP.LocalAddress = c.String("stcp-addr")
				cfg.LocalPath = c.String("local-path")
				cfg.AppServerAddr = c.String("app-server-addr")
				return &cfg, nil
			})
		},
	}
}
