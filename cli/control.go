package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/visor"
)

// controlApp is `skywire cli` (also `skywire-cli`).
func controlApp(e env) *ucli.App {
	return &ucli.App{
		Usage: "control a running visor",
		Commands: []*ucli.Command{
			{
				Name:  "visor",
				Usage: "query and control a visor",
				Subcommands: []*ucli.Command{
					infoCommand(e),
					statusCommand(e),
					pkCommand(e),
					verCommand(e),
					portsCommand(e),
					haltCommand(e),
					reloadCommand(e),
					tpCommand(e),
					addTPCommand(e),
					lsTPCommand(e),
					rmTPCommand(e),
					routeCommand(e),
					appCommand(e),
					pingCommand(e),
					benchCommand(e),
					logCommand(e),
					eventsCommand(e),
					visorGenConfigCommand(e),
				},
			},
			statusCommand(e),
			doctorCommand(e),
			configCommand(e),
			proxyCommand(e),
			vpnCommand(e),
			dmsgptyCommand(e),
			// Shortcuts for the common verbs.
			addTPCommand(e),
			lsTPCommand(e),
			rmTPCommand(e),
		},
	}
}

// rpcFlags are the flags of every command that talks to a visor; they
// include --timeout unless the command defines its own.
func rpcFlags(withTimeout bool) []ucli.Flag {
	f := []ucli.Flag{
		&ucli.StringFlag{Name: "rpc", Value: defaultRPC(), EnvVars: []string{"SKYWIRE_CLI_ADDR"}, Usage: "the visor's cli_addr: unix socket path or host:port (default: your visor's socket, else the system service's " + visor.SystemCLIAddr + ")"},
		&ucli.StringFlag{Name: "token-file", EnvVars: []string{"SKYWIRE_CLI_TOKEN_FILE"}, Usage: "file holding the admin token (needed when --rpc is host:port; the visor writes it to <local_path>/cli-token)"},
		&ucli.BoolFlag{Name: "json", Usage: "print JSON"},
	}
	if withTimeout {
		f = append(f, &ucli.DurationFlag{Name: "timeout", Value: 20 * time.Second, Usage: "give up after this long"})
	}
	return f
}

// defaultRPC is the admin socket of the user's own visor, or, if there is
// none and the system service's exists, that one.
func defaultRPC() string {
	own := admin.DefaultAddr()
	if _, err := os.Stat(own); err != nil {
		if _, err := os.Stat(visor.SystemCLIAddr); err == nil {
			return visor.SystemCLIAddr
		}
	}
	return own
}

// call runs op against the visor named by the command's flags, giving up
// after --timeout.
func call[Req, Resp any](c *ucli.Context, op admin.Op[Req, Resp], req Req) (Resp, error) {
	return callWithin(c, c.Duration("timeout"), op, req)
}

// callWithin runs op, giving up after d.
func callWithin[Req, Resp any](c *ucli.Context, d time.Duration, op admin.Op[Req, Resp], req Req) (Resp, error) {
	var zero Resp
	client, err := clientFor(c)
	if err != nil {
		return zero, err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(c.Context, d)
	defer cancel()
	resp, err := admin.Call(ctx, client, op, req)
	return resp, unreachableHint(err)
}

// follow runs a streaming op, calling fn with each item, until the visor
// ends it or the user interrupts (Ctrl-C: a clean end).
func follow[Req, Item any](c *ucli.Context, op admin.Stream[Req, Item], req Req, fn func(Item) error) error {
	client, err := clientFor(c)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = admin.Follow(ctx, client, op, req, fn)
	if ctx.Err() != nil && c.Context.Err() == nil {
		return nil // interrupted: the user is done reading
	}
	return unreachableHint(err)
}

// clientFor is the admin client --rpc and --token-file name.
func clientFor(c *ucli.Context) (*admin.Client, error) {
	token := ""
	if f := c.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	client, err := admin.NewClient(c.String("rpc"), token)
	if err != nil {
		return nil, usagef("--rpc: %v", err)
	}
	return client, nil
}

func unreachableHint(err error) error {
	if errors.Is(err, admin.ErrUnreachable) {
		return fmt.Errorf("%w\nis the visor running? start it with `skywire visor run -c FILE`, or point --rpc at its cli_addr", err)
	}
	return err
}

// printLine prints a log line, or it as a JSON string (one per line).
func printLine(e env, c *ucli.Context, line string) error {
	if c.Bool("json") {
		b, _ := json.Marshal(line)
		_, err := fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(e.stdout, line)
	return err
}

// logCommand is `cli visor log`: the visor's own log.
func logCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "log",
		Usage: "show the visor's own last log lines (-f: and follow them)",
		Flags: logLinesFlags("go on printing new lines (Ctrl-C stops)"),
		Action: func(c *ucli.Context) error {
			return printLogs(e, c, admin.VisorLog, admin.FollowVisorLog, admin.LogsRequest{Lines: c.Int("lines")})
		},
	}
}

// logLinesFlags are a log-reading command's flags: --lines and --follow (its usage).
func logLinesFlags(followUsage string) []ucli.Flag {
	return append(rpcFlags(true),
		&ucli.IntFlag{Name: "lines", Aliases: []string{"n"}, Value: 100, Usage: "how many lines"},
		&ucli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: followUsage})
}

// printLogs prints a log's last lines (op), or with --follow follows it
// (follows), a line at a time.
func printLogs(e env, c *ucli.Context, op admin.Op[admin.LogsRequest, []string], follows admin.Stream[admin.LogsRequest, string], req admin.LogsRequest) error {
	if c.Bool("follow") {
		return follow(c, follows, req, func(l string) error { return printLine(e, c, l) })
	}
	lines, err := call(c, op, req)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(e.stdout, lines)
	}
	for _, l := range lines {
		fmt.Fprintln(e.stdout, l)
	}
	return nil
}

// eventsCommand is `cli visor events`: the visor's changes as they happen.
func eventsCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "events",
		Usage: "print the visor's state, then every change (transports, apps, routes) as it happens; Ctrl-C stops",
		Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			return follow(c, admin.Events, admin.Empty{}, func(ev admin.Event) error {
				if c.Bool("json") {
					b, _ := json.Marshal(ev)
					_, err := fmt.Fprintf(e.stdout, "%s\n", b)
					return err
				}
				_, err := fmt.Fprintf(e.stdout, "%s  %-14s %s\n", ev.Time.Format("15:04:05"), ev.Kind, eventText(ev))
				return err
			})
		},
	}
}

// eventText is an event's subject in words.
func eventText(ev admin.Event) string {
	switch {
	case ev.Transport != nil:
		t := ev.Transport
		return fmt.Sprintf("%s %s %s  sent %d  received %d  rtt %.2f ms", t.ID, t.Type, t.RemotePK.Short(), t.Sent, t.Received, t.RTTMS)
	case ev.App != nil:
		return ev.App.Name + ": " + appState(*ev.App)
	case ev.Kind == admin.EventRoutes:
		return fmt.Sprintf("%d routing rules", ev.Routes)
	}
	return ""
}

func infoCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "info",
		Usage: "show the visor's public key, version, uptime and config",
		Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			info, err := call(c, admin.GetInfo, admin.Empty{})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, info)
			}
			up := time.Duration(info.UptimeSeconds * float64(time.Second)).Round(time.Second)
			build := info.Build.GoVersion + " " + info.Build.OS + "/" + info.Build.Arch
			if info.Build.Commit != "" {
				build = "commit " + short(info.Build.Commit) + ", " + build
			}
			return printTable(e.stdout, [][2]string{
				{"public key", info.PK.Hex()},
				{"version", info.Version + " (" + build + ")"},
				{"uptime", up.String() + " (since " + info.StartedAt.Format(time.RFC3339) + ")"},
				{"config", info.ConfigPath},
				{"local path", info.LocalPath},
				{"cli address", info.CLIAddr},
			})
		},
	}
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// printJSON writes v as indented JSON: the raw value, no envelope.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printTable writes "key:  value" lines aligned.
func printTable(w io.Writer, rows [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
	}
	return tw.Flush()
}
