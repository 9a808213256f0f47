package cli

import (
	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
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
					return genConfig(c, e, func(sk cipher.SecKey, host string) (checkable, error) {
						cfg := hypervisor.DefaultConfig(sk)
						if host != "" {
							cfg.UseServices(host)
						}
						cfg.HTTPAddr = c.String("http-addr")
						return &cfg, nil
					})
				},
			},
		},
	}
}
