package cli

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/apps/sdk"
)

// listServicesCommand is `vpn list` / `proxy list`: the servers of typ the
// service discovery lists, as the visor reads and verifies them.
func listServicesCommand(e env, typ, what string) *ucli.Command {
	return &ucli.Command{
		Name:  "list",
		Usage: "the " + what + " the service discovery lists (key, label, country, version, last seen)",
		Flags: append(rpcFlags(true),
			&ucli.StringFlag{Name: "country", Usage: "only those in this country (ISO 3166-1 alpha-2, e.g. DE)"},
			&ucli.StringFlag{Name: "sort", Value: "seen", Usage: "order by `FIELD`: seen (newest first), key, country, label or version"},
		),
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("list takes no arguments (--country, --sort)")
			}
			by := map[string]func(a, b admin.ServiceInfo) int{
				"seen":    func(a, b admin.ServiceInfo) int { return b.LastSeen.Compare(a.LastSeen) },
				"key":     func(a, b admin.ServiceInfo) int { return cmp.Compare(a.PK.Hex(), b.PK.Hex()) },
				"country": func(a, b admin.ServiceInfo) int { return cmp.Compare(a.Country, b.Country) },
				"label":   func(a, b admin.ServiceInfo) int { return cmp.Compare(a.Label, b.Label) },
				"version": func(a, b admin.ServiceInfo) int { return cmp.Compare(a.Version, b.Version) },
			}[c.String("sort")]
			if by == nil {
				return usagef("--sort %q: seen, key, country, label or version", c.String("sort"))
			}
			list, err := call(c, admin.ListServices, admin.ServicesRequest{Type: typ, Country: c.String("country")})
			if err != nil {
				return err
			}
			slices.SortStableFunc(list, func(a, b admin.ServiceInfo) int {
				return cmp.Or(by(a, b), cmp.Compare(a.PK.Hex(), b.PK.Hex()))
			})
			if c.Bool("json") {
				return printJSON(e.stdout, list)
			}
			if len(list) == 0 {
				fmt.Fprintf(e.stdout, "the service discovery lists no %s\n", what)
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tPORT\tLABEL\tCOUNTRY\tVERSION\tLAST SEEN")
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s ago\n", s.PK.Hex(), s.Port, dash(s.Label), dash(s.Country), s.Version, time.Since(s.LastSeen).Round(time.Second))
			}
			return tw.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// advertiseFlags are a server app's: whether and how the visor lists it in
// the service discovery.
func advertiseFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "private", Usage: "do not list this server in the service discovery (clients need its key)"},
		&ucli.StringFlag{Name: "country", Usage: "the country shown in the service discovery (ISO 3166-1 alpha-2, e.g. DE)"},
		&ucli.StringFlag{Name: "label", Usage: "a label shown in the service discovery (at most 64 characters)"},
	}
}

// advertise has the visor list the app as a server of typ, unless
// --private; a visor without a service discovery is told in the log.
func advertise(c *ucli.Context, client *sdk.Client, typ string, log *zap.Logger) {
	if c.Bool("private") {
		return
	}
	if err := client.Advertise(typ, strings.ToUpper(c.String("country")), c.String("label")); err != nil {
		log.Warn("not listed in the service discovery", zap.Error(err))
		return
	}
	log.Info("listed in the service discovery", zap.String("type", typ))
}
