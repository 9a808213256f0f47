package cli

import (
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// permute moves each flag to the command that defines it, ahead of that
// command's positional arguments, so that `skywire cli add-tp <pk> --type
// stcp`, `skywire visor FILE --log-level debug` and `skywire cli --rpc S
// visor info` all work: urfave/cli v2, like package flag, stops reading
// flags at the first positional argument, and reads a flag only at the
// level that declares it. A flag typed above its command waits until the
// walk reaches a level that declares it (or the last command, which then
// reports it unknown). Everything after "--" stays positional.
func permute(app *ucli.App, args []string) []string {
	flags, cmds := app.Flags, app.Commands
	group := app.Action == nil // a level that only holds commands (permute runs before prepare gives it an action)
	var out, positional []string
	var pending [][]string // a flag and its value, if any
	flush := func(all bool) {
		kept := pending[:0]
		for _, f := range pending {
			if all || declares(flags, f[0]) {
				out = append(out, f...)
			} else {
				kept = append(kept, f)
			}
		}
		pending = kept
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			f := []string{a}
			if !strings.Contains(a, "=") && takesValue(flags, cmds, a) && i+1 < len(args) {
				i++
				f = append(f, args[i])
			}
			pending = append(pending, f)
			continue
		}
		if len(positional) == 0 {
			if c := findCommand(cmds, a); c != nil {
				flush(false)
				out = append(out, a)
				flags, cmds, group = c.Flags, c.Subcommands, c.Action == nil
				continue
			}
		}
		positional = append(positional, a)
	}
	if group && len(cmds) > 0 && len(positional) > 0 {
		// A group given something that is none of its commands: leave the
		// flags after it, so the group says "unknown command", not
		// "flag provided but not defined".
		out = append(out, positional...)
		positional = nil
	}
	flush(true)
	return append(out, positional...)
}

// declares reports whether flags holds the flag arg ("--name", "-n" or
// "--name=value").
func declares(flags []ucli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// takesValue reports whether the flag arg takes a value, as declared at
// this level or, failing that, by the first command below that declares it.
func takesValue(flags []ucli.Flag, cmds []*ucli.Command, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			if dg, ok := f.(ucli.DocGenerationFlag); ok {
				return dg.TakesValue()
			}
			return false
		}
	}
	for _, c := range cmds {
		if declares(c.Flags, arg) || len(c.Subcommands) > 0 {
			if v := takesValue(c.Flags, c.Subcommands, arg); v || declares(c.Flags, arg) {
				return v
			}
		}
	}
	return false
}

func findCommand(cmds []*ucli.Command, name string) *ucli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
