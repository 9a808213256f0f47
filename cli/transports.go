package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
)

func addTPCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:      "add-tp",
		Usage:     "make a transport to a visor (or show the existing one)",
		ArgsUsage: "<public key>",
		Description: "With no --type, tries stcp, stcpr, sudph and dmsg in that order (direct before relayed)\n" +
			"and keeps the first that works.",
		Flags: append(rpcFlags(false),
			&ucli.StringFlag{Name: "type", Aliases: []string{"t"}, Usage: "stcp, stcpr, sudph or dmsg"},
			&ucli.DurationFlag{Name: "timeout", Aliases: []string{"o"}, Value: 20 * time.Second, Usage: "give up dialling after this long"},
			&ucli.BoolFlag{Name: "persistent", Aliases: []string{"p"}, Usage: "keep it up: save it in the config and redial it whenever it drops"},
			&ucli.StringFlag{Name: "label", Aliases: []string{"l"}, Usage: "name the peer (saved in the config; shown by ls-tp and status)"},
		),
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("add-tp takes one public key, got %d arguments", c.NArg())
			}
			pk, err := cipher.ParsePubKey(c.Args().First())
			if err != nil {
				return usagef("%v", err)
			}
			timeout := c.Duration("timeout")
			req := admin.AddTransportRequest{PK: pk, Type: c.String("type"), TimeoutMS: timeout.Milliseconds(), Persistent: c.Bool("persistent"), Label: c.String("label")}
			tp, err := callWithin(c, timeout+10*time.Second, admin.AddTransport, req)
			if err != nil {
				return fmt.Errorf("add-tp %s: %w", pk.Short(), err)
			}
			if c.Bool("json") {
				return printJSON(e.stdout, tp)
			}
			return printTransports(e, []admin.TransportInfo{tp})
		},
	}
}

func lsTPCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "ls-tp",
		Usage: "list the visor's transports",
		Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("ls-tp takes no arguments")
			}
			tps, err := call(c, admin.ListTransports, admin.Empty{})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, tps)
			}
			if len(tps) == 0 {
				fmt.Fprintln(e.stdout, "no transports (make one with `skywire cli add-tp <public key>`)")
				return nil
			}
			return printTransports(e, tps)
		},
	}
}

func rmTPCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:      "rm-tp",
		Usage:     "close a transport",
		ArgsUsage: "<id or unique prefix>",
		Flags:     rpcFlags(true),
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("rm-tp takes one transport id (see ls-tp), got %d arguments", c.NArg())
			}
			tp, err := call(c, admin.RemoveTransport, admin.RemoveTransportRequest{ID: c.Args().First()})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, tp)
			}
			fmt.Fprintf(e.stdout, "removed %s transport %s to %s\n", tp.Type, tp.ID, tp.RemotePK)
			return nil
		},
	}
}

func printTransports(e env, tps []admin.TransportInfo) error {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTYPE\tREMOTE\tLABEL\tDIR\tSENT\tRECEIVED\tRTT\tAGE")
	for _, tp := range tps {
		dir := "in"
		if tp.Dialer {
			dir = "out"
		}
		if tp.Persistent {
			dir += "*"
		}
		rtt := "-"
		if tp.RTTMS > 0 {
			rtt = fmt.Sprintf("%.2fms", tp.RTTMS)
		}
		age := (time.Duration(tp.AgeSeconds * float64(time.Second))).Round(time.Second)
		label := tp.Label
		if label == "" {
			label = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tp.ID[:12], tp.Type, tp.RemotePK, label, dir, bytesText(tp.Sent), bytesText(tp.Received), rtt, age)
	}
	return tw.Flush()
}

// bytesText is n in B, KiB, MiB or GiB.
func bytesText(n uint64) string {
	const k = 1024
	switch {
	case n < k:
		return fmt.Sprintf("%d B", n)
	case n < k*k:
		return fmt.Sprintf("%.1f KiB", float64(n)/k)
	case n < k*k*k:
		return fmt.Sprintf("%.1f MiB", float64(n)/(k*k))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(k*k*k))
}
