package cli

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
	"github.com/skyfleet/skywire/internal/configfile"
)

const defaultHypervisorConfig = "hypervisor-config.json"

// hypervisorApp is `skywire hypervisor` (also `hypervisor`).
func hypervisorApp(e env) *ucli.App {
	return &ucli.App{
		Usage: "web UI managing many visors",
		Commands: []*ucli.Command{
			{
				Name:            "run",
				Usage:           "serve the web UI (not in this build yet)",
				SkipFlagParsing: true,
				Action: func(*ucli.Context) error {
					return notBuilt("skywire hypervisor run")
				},
			},
			{
				Name:  "gen-config",
				Usage: "write a new hypervisor config with a fresh key",
				Flags: append(genConfigFlags(defaultHypervisorConfig),
					&ucli.StringFlag{Name: "http-addr", Value: hypervisor.DefaultHTTPAddr, Usage: "where the web UI listens"},
				),
				Action: func(c *ucli.Context) error {
					if c.NArg() > 0 {
						return usagef("gen-config takes no arguments (got %q); the file is -o", c.Args().First())
					}
					host, err := servicesHost(c)
					if err != nil {
						return err
					}
					out := c.String("output")
					sk, err := secretKey(c, e, out, func(path string) (cipher.SecKey, error) {
						var old hypervisor.Config
						err := configfile.Load(path, &old)
						return old.SK, err
					})
					if err != nil {
						return err
					}
					cfg := hypervisor.DefaultConfig(sk)
					if host != "" {
						cfg.UseServices(host)
					}
					cfg.HTTPAddr = c.String("http-addr")
					if err := cfg.Validate(); err != nil {
						return usagef("the flags make an invalid config:\n%v", err)
					}
					return emitConfig(c, e, out, &cfg, cfg.PK)
				},
			},
		},
	}
}
