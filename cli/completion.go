package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// The command tree, for shell completion and the man page: every role's
// commands, subcommands and flags, read from the same urfave/cli
// definitions that run them, so neither can drift from the binary.

// tree is one role as a command: its flags and commands under its name.
func tree(e env) *ucli.App {
	app := &ucli.App{Name: "skywire", Usage: "one executable for the whole Skywire network"}
	for _, r := range roles() {
		if r.build == nil {
			continue
		}
		if r.name == "completion" || r.name == "man" { // (their apps build this tree)
			app.Commands = append(app.Commands, &ucli.Command{Name: r.name, Usage: r.summary})
			continue
		}
		a := r.build(e)
		app.Commands = append(app.Commands, &ucli.Command{Name: r.name, Usage: r.summary, Flags: a.Flags, Subcommands: a.Commands, Description: a.Description, ArgsUsage: a.ArgsUsage})
	}
	return app
}

// completions maps each command path ("", "cli", "cli visor", …) to what
// may follow it: its commands and its flags.
func completions(app *ucli.App) map[string][]string {
	out := map[string][]string{}
	var walk func(path string, flags []ucli.Flag, cmds []*ucli.Command)
	walk = func(path string, flags []ucli.Flag, cmds []*ucli.Command) {
		var words []string
		for _, c := range cmds {
			if !c.Hidden {
				words = append(words, c.Names()...)
			}
		}
		for _, f := range flags {
			for _, n := range f.Names() {
				if len(n) == 1 {
					words = append(words, "-"+n)
				} else {
					words = append(words, "--"+n)
				}
			}
		}
		words = append(words, "--help")
		out[path] = words
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			for _, n := range c.Names() {
				walk(strings.TrimSpace(path+" "+n), c.Flags, c.Subcommands)
			}
		}
	}
	walk("", app.Flags, app.Commands)
	return out
}

// completionApp is `skywire completion bash|zsh|fish|powershell`.
func completionApp(e env) *ucli.App {
	return &ucli.App{
		Usage:     "print a shell completion script: bash, zsh, fish or powershell",
		ArgsUsage: "bash|zsh|fish|powershell",
		Description: "bash:       skywire completion bash > /etc/bash_completion.d/skywire\n" +
			"zsh:        skywire completion zsh > \"${fpath[1]}/_skywire\"\n" +
			"fish:       skywire completion fish > ~/.config/fish/completions/skywire.fish\n" +
			"PowerShell: skywire completion powershell | Out-String | Invoke-Expression",
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("completion takes the shell: bash, zsh, fish or powershell")
			}
			table := completions(tree(e))
			switch c.Args().First() {
			case "bash":
				return writeBash(e.stdout, table)
			case "zsh":
				fmt.Fprint(e.stdout, "#compdef skywire\nautoload -U +X bashcompinit && bashcompinit\n")
				return writeBash(e.stdout, table)
			case "fish":
				return writeFish(e.stdout, table)
			case "powershell":
				return writePowerShell(e.stdout, table)
			}
			return usagef("completion %q: want bash, zsh, fish or powershell", c.Args().First())
		},
	}
}

func sortedPaths(table map[string][]string) []string {
	paths := make([]string, 0, len(table))
	for p := range table {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths
}

// The scripts find the longest command path among the words typed so far
// (words that start with "-" are skipped) and offer what may follow it.

func writeBash(w io.Writer, table map[string][]string) error {
	fmt.Fprint(w, "# skywire completion for bash (and zsh through bashcompinit): skywire completion bash\n")
	fmt.Fprint(w, "_skywire_complete() {\n  local -A next=(\n")
	for _, p := range sortedPaths(table) {
		fmt.Fprintf(w, "    [%q]=%q\n", "k:"+p, strings.Join(table[p], " "))
	}
	fmt.Fprint(w, `  )
  local path="" try w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    try="${path:+$path }$w"
    [[ -n "${next[k:$try]+x}" ]] && path="$try"
  done
  COMPREPLY=($(compgen -W "${next[k:$path]}" -- "${COMP_WORDS[COMP_CWORD]}"))
}
complete -o default -F _skywire_complete skywire
`)
	return nil
}

func writeFish(w io.Writer, table map[string][]string) error {
	fmt.Fprint(w, "# skywire completion for fish: skywire completion fish > ~/.config/fish/completions/skywire.fish\n")
	fmt.Fprint(w, "function __skywire_next\n  set -l path ''\n  for w in (commandline -opc)[2..-1]\n    string match -q -- '-*' $w; and continue\n    set -l try (string trim -- \"$path $w\")\n    if __skywire_words \"$try\" >/dev/null\n      set path $try\n    end\n  end\n  __skywire_words \"$path\"\nend\n")
	fmt.Fprint(w, "function __skywire_words\n  switch $argv[1]\n")
	for _, p := range sortedPaths(table) {
		fmt.Fprintf(w, "    case %s\n      printf '%%s\\n' %s\n", fishQuote(p), strings.Join(table[p], " "))
	}
	fmt.Fprint(w, "    case '*'\n      return 1\n  end\nend\ncomplete -c skywire -f -a '(__skywire_next)'\n")
	return nil
}

func fishQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

func writePowerShell(w io.Writer, table map[string][]string) error {
	fmt.Fprint(w, "# skywire completion for PowerShell: skywire completion powershell | Out-String | Invoke-Expression\n")
	fmt.Fprint(w, "$skywireNext = @{\n")
	for _, p := range sortedPaths(table) {
		fmt.Fprintf(w, "  '%s' = @('%s')\n", p, strings.Join(table[p], "','"))
	}
	fmt.Fprint(w, `}
Register-ArgumentCompleter -Native -CommandName skywire, skywire.exe -ScriptBlock {
  param($wordToComplete, $commandAst, $cursorPosition)
  $path = ''
  foreach ($e in $commandAst.CommandElements | Select-Object -Skip 1) {
    $w = $e.ToString()
    if ($w -eq $wordToComplete -or $w.StartsWith('-')) { continue }
    $try = ($path + ' ' + $w).Trim()
    if ($skywireNext.ContainsKey($try)) { $path = $try }
  }
  $skywireNext[$path] | Where-Object { $_ -like "$wordToComplete*" } | ForEach-Object {
    [System.Management.Automation.CompletionResult]::new($_, $_, 'ParameterValue', $_)
  }
}
`)
	return nil
}

// manApp is `skywire man`: the man page skywire(1), from the command tree.
func manApp(e env) *ucli.App {
	return &ucli.App{
		Usage: "print the man page skywire(1) (roff), made from the command tree",
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("man takes no arguments")
			}
			app := tree(e)
			app.Description = "One executable for the whole Skywire network: the visor, its CLI, the hypervisor, the discovery services and the built-in apps. " +
				"Run as `skywire ROLE` or under a role's program name (skywire-visor, skywire-cli, hypervisor, vpn-client, …)."
			page, err := app.ToManWithSection(1)
			if err != nil {
				return err
			}
			_, err = io.WriteString(e.stdout, page)
			return err
		},
	}
}
