// Package cli is the skywire executable's front: it picks a role from the
// program name or the first argument, builds the root logger, and runs the
// role's commands (urfave/cli). Every other package gets its logger and
// config from here.
//
// Dispatch: if argv[0]'s base name (".exe" stripped) is a role's program name
// (skywire-visor, skywire-cli, hypervisor, skychat, …) that role runs with
// all arguments; otherwise argv[1] names the role (skywire visor …). An
// unknown role is a usage error (exit 2) that lists the valid ones.
//
// Exit codes: 0 success, 1 the operation failed, 2 usage error.
package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/internal/appproto"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// env is what a role reads and writes; tests substitute buffers.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// role is one personality of the executable.
type role struct {
	name    string   // as the first argument: skywire <name>
	progs   []string // program names that select it: a symlink skywire-visor
	summary string
	build   func(env) *ucli.App // nil: not in this build yet
}

func roles() []role {
	rs := []role{
		{"visor", []string{"skywire-visor"}, "run a visor, the network node", visorApp},
		{"cli", []string{"skywire-cli"}, "control a running visor", controlApp},
		{"hypervisor", []string{"hypervisor", "skywire-hypervisor"}, "web UI managing many visors", hypervisorApp},
		{"svc", nil, "the discovery services (dmsg, transports, addresses, routes, services)", svcApp},
		{"demo", nil, "a complete private network on this machine", demoApp},
		{"version", nil, "print the build's version", versionApp},
		{"completion", nil, "print a shell completion script (bash, zsh, fish, powershell)", completionApp},
		{"man", nil, "print the man page skywire(1)", manApp},
	}
	// The built-in apps, from their one table; a nil build is not in this
	// build yet.
	builds := map[string]func(env) *ucli.App{"skychat": skychatApp, "skysocks": skysocksApp, "skysocks-client": skysocksClientApp, "vpn-server": vpnServerApp, "vpn-client": vpnClientApp}
	for _, b := range appproto.Builtins {
		rs = append(rs, role{b.Name, []string{b.Name}, "app: " + b.Summary, builds[b.Name]})
	}
	return rs
}

// Main runs the executable with args (args[0] is the program name) and
// returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		args = []string{"skywire"}
	}
	prog := programName(args[0])
	all := roles()
	for _, r := range all {
		for _, p := range r.progs {
			if p == prog {
				return run(e, r, prog, args[1:])
			}
		}
	}
	if len(args) < 2 {
		printRoles(stderr, all)
		return ExitUsage
	}
	switch args[1] {
	case "-h", "--help", "help":
		printRoles(stdout, all)
		return ExitOK
	case "-v", "--version":
		args = []string{args[0], "version"}
	}
	for _, r := range all {
		if r.name == args[1] {
			return run(e, r, "skywire "+r.name, args[2:])
		}
	}
	names := make([]string, len(all))
	for i, r := range all {
		names[i] = r.name
	}
	fmt.Fprintf(stderr, "skywire: unknown role %q\nvalid roles: %s\nrun `skywire --help` for what each does\n", args[1], strings.Join(names, ", "))
	return ExitUsage
}

func programName(arg0 string) string {
	base := filepath.Base(arg0)
	if strings.EqualFold(filepath.Ext(base), ".exe") {
		base = base[:len(base)-4]
	}
	return base
}

func printRoles(w io.Writer, all []role) {
	fmt.Fprint(w, "skywire: one executable for the whole Skywire network\n\n")
	fmt.Fprint(w, "Usage:\n  skywire <role> [arguments]\n  <program name> [arguments]\n\nRoles:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var progs []string
	for _, r := range all {
		note := ""
		if r.build == nil {
			note = " (not in this build yet)"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", r.name, r.summary, note)
		progs = append(progs, r.progs...)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nProgram names (link or copy skywire to one to run that role):\n  %s\n", strings.Join(progs, ", "))
	fmt.Fprint(w, "\nRun `skywire <role> --help` for a role's commands and flags.\n")
}

// run builds the role's app and runs it.
func run(e env, r role, name string, args []string) int {
	if r.build == nil {
		for _, a := range args {
			if a == "-h" || a == "--help" {
				fmt.Fprintf(e.stdout, "%s: %s\n%s\n", name, r.summary, notBuilt(name).Error())
				return ExitOK
			}
		}
		return exitCode(e.stderr, name, notBuilt(name))
	}
	app := r.build(e)
	if app.Usage == "" {
		app.Usage = r.summary
	}
	app.Name = name
	app.HelpName = name
	app.Reader, app.Writer, app.ErrWriter = e.stdin, e.stdout, e.stderr
	app.HideVersion = true
	app.ExitErrHandler = func(*ucli.Context, error) {} // we choose exit codes below
	args = permute(app, args)
	prepare(app.Commands)
	if app.Action == nil && len(app.Commands) > 0 {
		app.Action = unknownCommand(app.Commands)
	}
	app.OnUsageError = onUsageError
	err := app.Run(append([]string{name}, args...))
	return exitCode(e.stderr, name, err)
}

// usageError marks a mistake in how the command was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func onUsageError(_ *ucli.Context, err error, _ bool) error { return usageError{err} }

// prepare sets our usage-error hook on every command, and makes a group
// (a command of commands) refuse an unknown command with a usage error that
// lists the valid ones, instead of urfave/cli's "No help topic" (exit 3).
func prepare(cmds []*ucli.Command) {
	for _, c := range cmds {
		c.OnUsageError = onUsageError
		if c.Action == nil && len(c.Subcommands) > 0 {
			c.Action = unknownCommand(c.Subcommands)
		}
		prepare(c.Subcommands)
	}
}

// unknownCommand is the action of a group: its help without arguments, a
// usage error naming the valid commands with one.
func unknownCommand(cmds []*ucli.Command) ucli.ActionFunc {
	return func(c *ucli.Context) error {
		if c.NArg() == 0 {
			return ucli.ShowSubcommandHelp(c)
		}
		var names []string
		for _, cmd := range cmds {
			if !cmd.Hidden {
				names = append(names, cmd.Name)
			}
		}
		return usagef("unknown command %q; the commands here are: %s", c.Args().First(), strings.Join(names, ", "))
	}
}

func exitCode(stderr io.Writer, name string, err error) int {
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\nrun `%s --help` for usage\n", name, err, name)
		return ExitUsage
	}
	var ec ucli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(stderr, "%s: %s\n", name, msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return ExitFail
}
