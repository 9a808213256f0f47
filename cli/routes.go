package cli

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
)

func routeCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "route",
		Usage: "the visor's routing rules",
		Subcommands: []*ucli.Command{
			{
				Name:  "ls",
				Usage: "list the routing rules",
				Flags: rpcFlags(true),
				Action: func(c *ucli.Context) error {
					rules, err := call(c, admin.ListRoutes, admin.Empty{})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, rules)
					}
					if len(rules) == 0 {
						fmt.Fprintln(e.stdout, "no routes")
						return nil
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tKIND\tFROM\tTO\tIDLE")
					for _, r := range rules {
						from := r.InType + " " + r.InRemote.Short()
						to := r.Remote
						if r.Kind == "forward" {
							to = fmt.Sprintf("%s route %d", r.OutRemote.Short(), r.OutID)
						} else {
							to = "app " + r.Local + " ⇄ " + shortAddr(r.Remote)
						}
						kind := r.Kind
						if r.Pending {
							kind += " (setting up)"
						}
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.ID, kind, from, to, (time.Duration(r.IdleSeconds * float64(time.Second))).Round(time.Second))
					}
					return tw.Flush()
				},
			},
			{
				Name:      "rm",
				Usage:     "remove a rule (closing its route if it is an end)",
				ArgsUsage: "<id>",
				Flags:     rpcFlags(true),
				Action: func(c *ucli.Context) error {
					if c.NArg() != 1 {
						return usagef("route rm takes one rule id (see route ls)")
					}
					id, err := strconv.ParseUint(c.Args().First(), 10, 32)
					if err != nil {
						return usagef("rule id %q is not a number", c.Args().First())
					}
					if _, err := call(c, admin.RemoveRoute, admin.RemoveRouteRequest{ID: uint32(id)}); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "removed rule %d\n", id)
					return nil
				},
			},
		},
	}
}

// shortAddr shortens "pk:port" to "pk8…:port".
func shortAddr(a string) string {
	pk, port, ok := strings.Cut(a, ":")
	if !ok || len(pk) < 8 {
		return a
	}
	return pk[:8] + "…:" + port
}

func pkArg(c *ucli.Context, cmd string) (cipher.PubKey, error) {
	if c.NArg() != 1 {
		return cipher.PubKey{}, usagef("%s takes one public key, got %d arguments", cmd, c.NArg())
	}
	pk, err := cipher.ParsePubKey(c.Args().First())
	if err != nil {
		return pk, usagef("%v", err)
	}
	return pk, nil
}

func printHops(e env, hops []admin.HopInfo) {
	fmt.Fprint(e.stdout, "path: this visor")
	for _, h := range hops {
		if h.RTTMS > 0 {
			fmt.Fprintf(e.stdout, " —%s %.2fms→ %s", h.Type, h.RTTMS, h.PK.Short())
		} else {
			fmt.Fprintf(e.stdout, " —%s→ %s", h.Type, h.PK.Short())
		}
	}
	fmt.Fprintln(e.stdout)
}

func pingCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:      "ping",
		Usage:     "measure the round trip of a route to a visor, and show its path",
		ArgsUsage: "<public key>",
		Flags: append(rpcFlags(true),
			&ucli.IntFlag{Name: "count", Aliases: []string{"c"}, Value: 4, Usage: "pings to send"},
			&ucli.IntFlag{Name: "hops", Usage: "at least this many hops (default: the visor's routing.min_hops)"},
			&ucli.StringFlag{Name: "via", Usage: "with this visor's own key: the neighbour `key` a route to itself goes out to and back from"},
		),
		Action: func(c *ucli.Context) error {
			pk, err := pkArg(c, "ping")
			if err != nil {
				return err
			}
			req := admin.PingRequest{PK: pk, Count: c.Int("count"), MinHops: c.Int("hops")}
			if v := c.String("via"); v != "" {
				if req.Via, err = cipher.ParsePubKey(v); err != nil {
					return usagef("--via: %v", err)
				}
			}
			res, err := call(c, admin.Ping, req)
			if c.Bool("json") && err == nil {
				return printJSON(e.stdout, res)
			}
			if len(res.Hops) > 0 {
				printHops(e, res.Hops)
				fmt.Fprintf(e.stdout, "route set up in %.2fms\n", res.SetupMS)
				for i, r := range res.RTTsMS {
					fmt.Fprintf(e.stdout, "pong %d from %s: %.3fms\n", i+1, pk.Short(), r)
				}
			}
			return err
		},
	}
}

func benchCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:      "bench",
		Usage:     "measure throughput over a route to a visor",
		ArgsUsage: "<public key>",
		Flags: append(rpcFlags(false),
			&ucli.Int64Flag{Name: "bytes", Value: 64 << 20, Usage: "bytes to send"},
			&ucli.IntFlag{Name: "hops", Usage: "at least this many hops (default: the visor's routing.min_hops)"},
			&ucli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "give up after this long"},
		),
		Action: func(c *ucli.Context) error {
			pk, err := pkArg(c, "bench")
			if err != nil {
				return err
			}
			res, err := call(c, admin.Bench, admin.BenchRequest{PK: pk, Bytes: c.Int64("bytes"), MinHops: c.Int("hops")})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, res)
			}
			printHops(e, res.Hops)
			fmt.Fprintf(e.stdout, "%s in %.2fs: %.1f MB/s (%.0f Mbit/s)\n", bytesText(uint64(res.Bytes)), res.Seconds, res.MegabytesPerS, res.MegabytesPerS*8)
			return nil
		},
	}
}
