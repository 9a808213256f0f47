package cli

import (
	"fmt"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
)

// The reference's short `cli visor` verbs: pk, ver, ports, halt, and the
// `tp` group.

func pkCommand(e env) *ucli.Command {
	return infoCommandOf(e, "pk", "print the visor's public key",
		func(i admin.Info) string { return i.PK.Hex() },
		func(i admin.Info) any { return map[string]string{"pk": i.PK.Hex()} })
}

func verCommand(e env) *ucli.Command {
	return infoCommandOf(e, "ver", "print the running visor's version (`skywire version` prints this binary's)",
		func(i admin.Info) string { return i.Version },
		func(i admin.Info) any { return i.Build })
}

// infoCommandOf is a command that prints one thing of the visor's Info:
// text, or with --json asJSON.
func infoCommandOf(e env, name, usage string, text func(admin.Info) string, asJSON func(admin.Info) any) *ucli.Command {
	return &ucli.Command{
		Name:  name,
		Usage: usage,
		Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			info, err := call(c, admin.GetInfo, admin.Empty{})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, asJSON(info))
			}
			_, err = fmt.Fprintln(e.stdout, text(info))
			return err
		},
	}
}

// portUse is one address the visor or one of its apps listens on.
type portUse struct {
	What    string `json:"what"`
	Address string `json:"address"`
}

// visorPorts lists what the visor listens on: the admin API, each
// transport's listener, and the address of each app given one (--addr).
func visorPorts(info admin.Info, apps []admin.AppInfo) []portUse {
	out := []portUse{{"admin API (cli_addr)", info.CLIAddr}}
	var types []string
	for t := range info.Listening {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		out = append(out, portUse{t + " transports", info.Listening[t]})
	}
	for _, a := range apps {
		for i, arg := range a.Args {
			if v, ok := strings.CutPrefix(arg, "--addr="); ok {
				out = append(out, portUse{"app " + a.Name, v})
			} else if arg == "--addr" && i+1 < len(a.Args) {
				out = append(out, portUse{"app " + a.Name, a.Args[i+1]})
			}
		}
	}
	return out
}

func portsCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "ports",
		Usage: "list the addresses the visor and its apps listen on",
		Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			info, err := call(c, admin.GetInfo, admin.Empty{})
			if err != nil {
				return err
			}
			apps, err := call(c, admin.ListApps, admin.Empty{})
			if err != nil {
				return err
			}
			ports := visorPorts(info, apps)
			if c.Bool("json") {
				return printJSON(e.stdout, ports)
			}
			rows := make([][2]string, len(ports))
			for i, p := range ports {
				rows[i] = [2]string{p.What, p.Address}
			}
			return printTable(e.stdout, rows)
		},
	}
}

func haltCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "halt",
		Usage: "stop the visor (as SIGTERM does: apps, routes and transports are closed first)",
		Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			if _, err := call(c, admin.Halt, admin.Empty{}); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, map[string]bool{"halted": true})
			}
			_, err := fmt.Fprintln(e.stdout, "the visor is stopping")
			return err
		},
	}
}

// tpCommand is `cli visor tp`: the transport verbs under one group.
func tpCommand(e env) *ucli.Command {
	rename := func(c *ucli.Command, name string) *ucli.Command {
		c.Aliases = append(c.Aliases, c.Name)
		c.Name = name
		return c
	}
	return &ucli.Command{
		Name:  "tp",
		Usage: "the visor's transports: type, ls, add, rm",
		Subcommands: []*ucli.Command{
			{
				Name:  "type",
				Usage: "list the transport types this visor can use, in order of preference",
				Flags: rpcFlags(true),
				Action: func(c *ucli.Context) error {
					types, err := call(c, admin.TransportTypes, admin.Empty{})
					if err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(e.stdout, types)
					}
					_, err = fmt.Fprintln(e.stdout, strings.Join(types, "\n"))
					return err
				},
			},
			rename(lsTPCommand(e), "ls"),
			rename(addTPCommand(e), "add"),
			rename(rmTPCommand(e), "rm"),
		},
	}
}

func reloadCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "reload",
		Usage: "re-read the config file and apply what changed (log level, apps, persistent transports, pk_table, hypervisors, min hops) without dropping transports or routes; as SIGHUP does",
		Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			res, err := call(c, admin.Reload, admin.Empty{})
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, res)
			}
			if len(res.Applied) == 0 {
				fmt.Fprintln(e.stdout, "nothing to apply")
			}
			for _, a := range res.Applied {
				fmt.Fprintf(e.stdout, "applied: %s\n", a)
			}
			for _, n := range res.NeedRestart {
				fmt.Fprintf(e.stdout, "changed, takes effect at the next start: %s\n", n)
			}
			return nil
		},
	}
}
