package cli

import (
	"fmt"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/internal/buildinfo"
)

// versionApp is `skywire version`.
func versionApp(e env) *ucli.App {
	return &ucli.App{
		Usage: "print the build's version",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *ucli.Context) error {
			bi := buildinfo.Get()
			if c.Bool("json") {
				return printJSON(e.stdout, bi)
			}
			fmt.Fprintf(e.stdout, "skywire %s\n", bi.Version)
			rows := [][2]string{{"go", bi.GoVersion + " " + bi.OS + "/" + bi.Arch}}
			if bi.Commit != "" {
				rows = append(rows, [2]string{"commit", bi.Commit})
			}
			if bi.Date != "" {
				rows = append(rows, [2]string{"built", bi.Date})
			}
			return printTable(e.stdout, rows)
		},
	}
}

// notBuilt is the error of a role or command that a later version of this
// project provides: it says so instead of pretending.
func notBuilt(command string) error {
	return ucli.Exit(fmt.Sprintf("`%s` is not in this build of skywire yet (see docs/roadmap.md)", command), ExitFail)
}
