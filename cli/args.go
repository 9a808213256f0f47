package cli

import (
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// permute moves each command's flags ahead of its positional arguments, so
// that `skywire cli add-tp <pk> --type stcp` and `skywire visor FILE
// --log-level debug` work: urfave/cli v2, like package flag, stops reading
// flags at the first positional argument and would silently treat the rest
// as arguments. Everything after "--" stays positional.
func permute(app *ucli.App, args []string) []string {
	flags, cmds := app.Flags, app.Commands
	var out, pending, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i:]...)
			break
		}
		if len(a) > 1 && a[0] == '-' {
			pending = append(pending, a)
			if !strings.Contains(a, "=") && takesValue(flags, a) && i+1 < len(args) {
				i++
				pending = append(pending, args[i])
			}
			continue
		}
		if len(positional) == 0 {
			if c := findCommand(cmds, a); c != nil {
				out = append(append(out, pending...), a)
				pending = nil
				flags, cmds = c.Flags, c.Subcommands
				continue
			}
		}
		positional = append(positional, a)
	}
	return append(append(out, pending...), positional...)
}

func takesValue(flags []ucli.Flag, arg string) bool {
	name := strings.TrimLeft(arg, "-")
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			if dg, ok := f.(ucli.DocGenerationFlag); ok {
				return dg.TakesValue()
			}
			return false
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
