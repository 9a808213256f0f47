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
	"github.com/skyfleet/skywire/cipher"
)

// listServicesCommand is `vpn list` / `proxy list`: the servers of typ the
// service discovery lists, as the visor reads and verifies them.
func listServicesCommand(e env, typ, what string) *ucli.Command {
	return &ucli.Command{
		Name:  "list",
		Usage: "the " + what + " the service discovery lists (key, label, country, version, last seen)",
		Flags: append(rpcFlags(true),
			&ucli.StringFlag{Name: "country", Usage: "only those in this country (ISO 3166-1 alpha-2, e.g. DE)"},
			&ucli.StringFlag{Name: "sort", Value: "seen", Usage: "order by `FIELD`: seen (newest first), key, country, label, version or latency (with --ping)"},
			&ucli.BoolFlag{Name: "ping", Usage: "measure this visor's round trip to each over a route (adds a LATENCY column)"},
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
				"latency": byLatency,
			}[c.String("sort")]
			if by == nil {
				return usagef("--sort %q: seen, key, country, label, version or latency", c.String("sort"))
			}
			if c.String("sort") == "latency" && !c.Bool("ping") {
				return usagef("--sort latency needs --ping")
			}
			list, err := call(c, admin.ListServices, admin.ServicesRequest{Type: typ, Country: c.String("country"), Ping: c.Bool("ping")})
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
			head := "KEY\tPORT\tLABEL\tCOUNTRY\tVERSION\tLAST SEEN"
			if c.Bool("ping") {
				head += "\tLATENCY"
			}
			fmt.Fprintln(tw, head)
			for _, s := range list {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s ago", s.PK.Hex(), s.Port, dash(s.Label), dash(s.Country), s.Version, time.Since(s.LastSeen).Round(time.Second))
				if c.Bool("ping") {
					fmt.Fprintf(tw, "\t%s", latency(s))
				}
				fmt.Fprintln(tw)
			}
			return tw.Flush()
		},
	}
}

// byLatency orders reachable servers by round trip, the unreachable last.
func byLatency(a, b admin.ServiceInfo) int {
	ra, rb := a.PingError == "" && a.LatencyMS > 0, b.PingError == "" && b.LatencyMS > 0
	switch {
	case ra && rb:
		return cmp.Compare(a.LatencyMS, b.LatencyMS)
	case ra:
		return -1
	case rb:
		return 1
	}
	return 0
}

func latency(s admin.ServiceInfo) string {
	if s.PingError != "" {
		return "unreachable: " + s.PingError
	}
	return fmt.Sprintf("%.2f ms", s.LatencyMS)
}

// best is the lowest-latency reachable server of typ the service discovery
// lists, for `vpn start --best` and `proxy start --best`.
func best(c *ucli.Context, typ string) (admin.ServiceInfo, error) {
	list, err := call(c, admin.ListServices, admin.ServicesRequest{Type: typ, Country: c.String("country"), Ping: true})
	if err != nil {
		return admin.ServiceInfo{}, err
	}
	slices.SortStableFunc(list, byLatency)
	if len(list) == 0 || list[0].PingError != "" || list[0].LatencyMS <= 0 {
		return admin.ServiceInfo{}, fmt.Errorf("no reachable %s server in the service discovery (%d listed; `%s list --ping` shows why)", typ, len(list), typ)
	}
	return list[0], nil
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

// bestFlags pick the server from the service discovery instead of a key.
func bestFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: "best", Usage: "pick the lowest-latency reachable server the service discovery lists (instead of a key)"},
		&ucli.StringFlag{Name: "country", Usage: "with --best: only servers in this country (ISO 3166-1 alpha-2)"},
	}
}

// serverArg is a start command's server: its key argument, or with --best
// the service discovery's lowest-latency reachable one (told on stderr).
func serverArg(c *ucli.Context, e env, typ, cmd string) (cipher.PubKey, error) {
	if !c.Bool("best") {
		return pkArg(c, cmd)
	}
	if c.NArg() > 0 {
		return cipher.PubKey{}, usagef("%s: give a key or --best, not both", cmd)
	}
	s, err := best(c, typ)
	if err != nil {
		return cipher.PubKey{}, err
	}
	fmt.Fprintf(e.stderr, "picked %s (%s, %s, %.2f ms)\n", s.PK.Hex(), dash(s.Label), dash(s.Country), s.LatencyMS)
	return s.PK, nil
}
