package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
)

// statusCommand is `cli status`: the visor on one screen, like
// `tailscale status`.
func statusCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "status",
		Usage: "the visor on one screen: key, version, uptime, dmsg servers, services (probed now), transports, routes, apps, hypervisors",
		Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("status takes no arguments")
			}
			st, err := call(c, admin.GetStatus, admin.Empty{})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, st)
			}
			printStatus(e.stdout, st)
			return nil
		},
	}
}

func printStatus(w io.Writer, st admin.Status) {
	i := st.Info
	up := time.Duration(i.UptimeSeconds * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(w, "visor %s  %s  up %s  config %s\n", i.PK.Hex(), i.Version, up, i.ConfigPath)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	section := func(title string) {
		tw.Flush()
		fmt.Fprintf(w, "\n%s\n", title)
	}
	var servers []string
	for _, s := range i.DmsgServers {
		servers = append(servers, s.Short())
	}
	switch {
	case len(servers) > 0:
		fmt.Fprintf(w, "dmsg: %d session(s): %s\n", len(servers), strings.Join(servers, ", "))
	default:
		fmt.Fprintln(w, "dmsg: no session (see `skywire cli doctor`)")
	}

	section("services")
	if len(st.Services) == 0 {
		fmt.Fprintln(tw, "  none configured: only stcp transports to peers in stcp.pk_table work")
	}
	for _, s := range st.Services {
		state := fmt.Sprintf("ok\t%.1f ms", s.LatencyMS)
		if !s.OK {
			state = "FAILED\t" + s.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Name, s.URL, state)
	}

	section(fmt.Sprintf("transports (%d)", len(st.Transports)))
	for _, t := range st.Transports {
		dir := "in"
		if t.Dialer {
			dir = "out"
		}
		if t.Persistent {
			dir += ", persistent"
		}
		age := time.Duration(t.AgeSeconds * float64(time.Second)).Round(time.Second)
		peer := t.RemotePK.Short()
		if t.Label != "" {
			peer += " (" + t.Label + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\trtt %.2f ms\tsent %s\treceived %s\tup %s\n", short(t.ID), t.Type, peer, dir, t.RTTMS, bytesText(t.Sent), bytesText(t.Received), age)
	}

	kinds := map[string]int{}
	for _, r := range st.Routes {
		if r.Pending {
			kinds["pending"]++
		} else {
			kinds[r.Kind]++
		}
	}
	section(fmt.Sprintf("routes: %d rules (%d consume, %d forward, %d being set up)", len(st.Routes), kinds["consume"], kinds["forward"], kinds["pending"]))

	section("apps")
	for _, a := range st.Apps {
		auto := "manual"
		if a.AutoStart {
			auto = "auto start"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.Name, auto, appState(a))
	}

	section(fmt.Sprintf("hypervisors (%d)", len(st.Hypervisors)))
	for _, h := range st.Hypervisors {
		via := "over dmsg"
		if h.Address != "" {
			via = h.Address
		}
		state := "not linked yet"
		switch {
		case h.Connected:
			state = "linked since " + h.Since.Format(time.RFC3339)
		case h.LastError != "":
			state = "down: " + h.LastError
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", h.PK.Short(), via, state)
	}
	tw.Flush()
}
