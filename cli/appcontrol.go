package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
)

// appCommand is `cli visor app …`.
func appCommand(e env) *ucli.Command {
	one := func(c *ucli.Context, verb string) (string, error) {
		if c.NArg() != 1 {
			return "", usagef("app %s takes one app name (see app ls)", verb)
		}
		return c.Args().First(), nil
	}
	printApp := func(c *ucli.Context, i admin.AppInfo, what string) error {
		if c.Bool("json") {
			return printJSON(e.stdout, i)
		}
		fmt.Fprintf(e.stdout, "%s %s: %s\n", i.Name, what, appState(i))
		return nil
	}
	return &ucli.Command{
		Name:  "app",
		Usage: "the visor's apps",
		Subcommands: []*ucli.Command{
			{
				Name:  "ls",
				Usage: "list the apps: port, state, auto start",
				Flags: rpcFlags(true),
				Action: func(c *ucli.Context) error {
					apps, err := call(c, admin.ListApps, admin.Empty{})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, apps)
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "APP\tPORT\tAUTO START\tSTATE")
					for _, a := range apps {
						fmt.Fprintf(tw, "%s\t%d\t%v\t%s\n", a.Name, a.Port, a.AutoStart, appState(a))
					}
					return tw.Flush()
				},
			},
			{
				Name:      "start",
				Usage:     "start an app",
				ArgsUsage: "<name>",
				Flags:     rpcFlags(true),
				Action: func(c *ucli.Context) error {
					name, err := one(c, "start")
					if err != nil {
						return err
					}
					i, err := call(c, admin.StartApp, admin.AppRequest{Name: name})
					if err != nil {
						return err
					}
					return printApp(c, i, "started")
				},
			},
			{
				Name:      "stop",
				Usage:     "stop an app",
				ArgsUsage: "<name>",
				Flags:     rpcFlags(true),
				Action: func(c *ucli.Context) error {
					name, err := one(c, "stop")
					if err != nil {
						return err
					}
					i, err := call(c, admin.StopApp, admin.AppRequest{Name: name})
					if err != nil {
						return err
					}
					return printApp(c, i, "stopped")
				},
			},
			{
				Name:      "autostart",
				Usage:     "set whether an app starts with the visor (saved in the config)",
				ArgsUsage: "<name> on|off",
				Flags:     rpcFlags(true),
				Action: func(c *ucli.Context) error {
					if c.NArg() != 2 || (c.Args().Get(1) != "on" && c.Args().Get(1) != "off") {
						return usagef("app autostart takes an app name and on or off")
					}
					on := c.Args().Get(1) == "on"
					i, err := call(c, admin.SetAutoStart, admin.AutoStartRequest{Name: c.Args().First(), On: on})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, i)
					}
					fmt.Fprintf(e.stdout, "%s auto start: %s\n", i.Name, c.Args().Get(1))
					return nil
				},
			},
			{
				Name:      "passcode",
				Usage:     "set the passcode skysocks requires of its clients (saved in the config; restarts it if running)",
				ArgsUsage: "skysocks [passcode]",
				Description: "With no passcode, reads one line from stdin; an empty line removes the passcode.\n" +
					"skysocks-client's passcode is set with `skywire cli proxy start <pk> --passcode …`.",
				Flags: rpcFlags(true),
				Action: func(c *ucli.Context) error {
					if c.NArg() < 1 || c.NArg() > 2 {
						return usagef("app passcode takes an app name and, optionally, the passcode")
					}
					code := c.Args().Get(1)
					if c.NArg() == 1 {
						line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
						if err != nil && !errors.Is(err, io.EOF) {
							return fmt.Errorf("reading the passcode from stdin: %w", err)
						}
						code = strings.TrimRight(line, "\r\n")
					}
					i, err := call(c, admin.SetPasscode, admin.PasscodeRequest{Name: c.Args().First(), Passcode: code})
					if err != nil {
						return err
					}
					if code == "" {
						return printApp(c, i, "passcode removed")
					}
					return printApp(c, i, "passcode set")
				},
			},
			{
				Name:      "logs",
				Usage:     "show an app's last output lines (-f: and follow them)",
				ArgsUsage: "<name>",
				Flags:     logLinesFlags("go on printing new lines, across restarts of the app (Ctrl-C stops)"),
				Action: func(c *ucli.Context) error {
					name, err := one(c, "logs")
					if err != nil {
						return err
					}
					return printLogs(e, c, admin.AppLogs, admin.FollowAppLogs, admin.LogsRequest{Name: name, Lines: c.Int("lines")})
				},
			},
		},
	}
}

// appState is an app's state in words: "running (pid 12, 3m0s): status".
func appState(a admin.AppInfo) string {
	s := a.State
	switch {
	case a.State == "running":
		s += fmt.Sprintf(" (pid %d, %s)", a.PID, time.Since(a.Started).Round(time.Second))
		if a.Status != "" {
			s += ": " + a.Status
		}
	case a.Error != "":
		s += ": " + a.Error
	}
	return s
}

// proxyCommand is `cli proxy …`: skysocks-client.
func proxyCommand(e env) *ucli.Command {
	status := func(c *ucli.Context) error {
		apps, err := call(c, admin.ListApps, admin.Empty{})
		if err != nil {
			return err
		}
		for _, a := range apps {
			if a.Name != "skysocks-client" {
				continue
			}
			if c.Bool("json") {
				return printJSON(e.stdout, a)
			}
			rows := [][2]string{{"state", appState(a)}}
			if v := argValue(a.Args, "--srv"); v != "" {
				rows = append(rows, [2]string{"server", v})
			}
			if v := argValue(a.Args, "--addr"); v != "" {
				rows = append(rows, [2]string{"socks5", v})
			}
			if v := argValue(a.Args, "--http"); v != "" {
				rows = append(rows, [2]string{"http proxy", v})
			}
			return printTable(e.stdout, rows)
		}
		return fmt.Errorf("this visor has no skysocks-client app in its config")
	}
	return &ucli.Command{
		Name:  "proxy",
		Usage: "the SOCKS5 proxy client (skysocks-client)",
		Subcommands: []*ucli.Command{
			listServicesCommand(e, "proxy", "proxy servers"),
			{
				Name:      "start",
				Usage:     "proxy through the skysocks server on a visor (saved in the config)",
				ArgsUsage: "<public key> | --best",
				Flags: append(append(rpcFlags(true), bestFlags()...),
					&ucli.StringFlag{Name: "passcode", Usage: "the server's passcode, if it has one"},
					&ucli.StringFlag{Name: "addr", Usage: "local SOCKS5 address (default: as configured, 127.0.0.1:1080)"},
					&ucli.StringFlag{Name: "http", Usage: "also an HTTP proxy on this address, e.g. 127.0.0.1:8080 (\"off\": none; default: as configured)"},
				),
				Action: func(c *ucli.Context) error {
					pk, err := serverArg(c, e, "proxy", "proxy start")
					if err != nil {
						return err
					}
					i, err := call(c, admin.StartProxy, admin.ProxyRequest{Server: pk, Passcode: c.String("passcode"), Addr: c.String("addr"), HTTP: c.String("http")})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, i)
					}
					fmt.Fprintf(e.stdout, "skysocks-client started: SOCKS5 on %s through %s\n", argValue(i.Args, "--addr"), pk.Hex())
					fmt.Fprintf(e.stdout, "try: curl --socks5-hostname %s http://example.com/\n", argValue(i.Args, "--addr"))
					if h := argValue(i.Args, "--http"); h != "" {
						fmt.Fprintf(e.stdout, "HTTP proxy on %s: curl -x http://%s http://example.com/\n", h, h)
					}
					return nil
				},
			},
			{
				Name:  "stop",
				Usage: "stop the proxy client",
				Flags: rpcFlags(true),
				Action: func(c *ucli.Context) error {
					if c.NArg() > 0 {
						return usagef("proxy stop takes no arguments")
					}
					// Stopped for good: not again at the next start.
					i, err := call(c, admin.SetAutoStart, admin.AutoStartRequest{Name: "skysocks-client", On: false})
					if err != nil {
						return err
					}
					if i.State == "running" {
						if i, err = call(c, admin.StopApp, admin.AppRequest{Name: "skysocks-client"}); err != nil {
							return err
						}
					}
					if c.Bool("json") {
						return printJSON(e.stdout, i)
					}
					fmt.Fprintln(e.stdout, "skysocks-client stopped")
					return nil
				},
			},
			{
				Name:   "status",
				Usage:  "show whether the proxy client runs, and its server",
				Flags:  rpcFlags(true),
				Action: status,
			},
		},
	}
}

// argValue is flag's value in args ("--flag value" or "--flag=value").
func argValue(args []string, flag string) string { return admin.ArgValue(args, flag) }
