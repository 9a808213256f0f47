// Command skywire is the whole Skywire network in one executable: visor,
// CLI, hypervisor, discovery services and apps. It only dispatches; package
// cli picks the role from the program name or the first argument.
package main

import (
	"os"

	"github.com/skyfleet/skywire/cli"
)

func main() {
	os.Exit(cli.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
