package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
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
					visorGenConfigCommand(e),
				},
			},
		},
	}
}

// rpcFlags are the flags of every command that talks to a visor.
func rpcFlags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "rpc", Value: admin.DefaultAddr(), EnvVars: []string{"SKYWIRE_CLI_ADDR"}, Usage: "the visor's cli_addr: unix socket path or host:port"},
		&ucli.StringFlag{Name: "token-file", EnvVars: []string{"SKYWIRE_CLI_TOKEN_FILE"}, Usage: "file holding the admin token (needed when --rpc is host:port; the visor writes it to <local_path>/cli-token)"},
		&ucli.DurationFlag{Name: "timeout", Value: 20 * time.Second, Usage: "give up after this long"},
		&ucli.BoolFlag{Name: "json", Usage: "print JSON"},
	}
}

// call runs op against the visor named by the command's flags.
func call[Req, Resp any](c *ucli.Context, op admin.Op[Req, Resp], req Req) (Resp, error) {
	var zero Resp
	token := ""
	if f := c.String("token-file"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return zero, fmt.Errorf("--token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	client, err := admin.NewClient(c.String("rpc"), token)
	if err != nil {
		return zero, usagef("--rpc: %v", err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	resp, err := admin.Call(ctx, client, op, req)
	if errors.Is(err, admin.ErrUnreachable) {
		return zero, fmt.Errorf("%w\nis the visor running? start it with `skywire visor run -c FILE`, or point --rpc at its cli_addr", err)
	}
	return resp, err
}

func infoCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "info",
		Usage: "show the visor's public key, version, uptime and config",
		Flags: rpcFlags(),
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
