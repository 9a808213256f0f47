package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsgpty"
)

// exitPTYFailed is the exit status of `dmsgpty start|exec` when no program
// ran (the session could not be opened, or broke): as ssh, so that a
// script can tell it from the remote program's own status.
const exitPTYFailed = 255

// dmsgptyCommand is `cli dmsgpty …`: remote shells.
func dmsgptyCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "dmsgpty",
		Usage: "a shell or a command on a visor, over dmsg (the visor must whitelist this visor's key)",
		Subcommands: []*ucli.Command{
			{
				Name:      "start",
				Usage:     "open an interactive terminal on the visor with key PK (this visor's own if none); exit it to end",
				ArgsUsage: "[PK]",
				Flags:     rpcFlags(true),
				Action:    func(c *ucli.Context) error { return ptyStart(e, c) },
			},
			{
				Name:      "exec",
				Usage:     "run one command on the visor with key PK and exit with its status (255: it could not run)",
				ArgsUsage: "PK -- COMMAND [ARG…]",
				Flags: append(rpcFlags(true),
					&ucli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "run it on a terminal (output then mixes stdout and stderr)"}),
				Action: func(c *ucli.Context) error { return ptyExec(e, c) },
			},
			{
				Name:  "whitelist",
				Usage: "the keys that may open a shell on this visor (dmsgpty.whitelist)",
				Subcommands: []*ucli.Command{
					{Name: "ls", Usage: "list them", Flags: rpcFlags(true), Action: func(c *ucli.Context) error {
						acc, err := call(c, admin.PTYWhitelist, admin.Empty{})
						if err != nil {
							return err
						}
						return printAccess(e, c, acc)
					}},
					whitelistEdit(e, "add", "let these keys open a shell here (saved in the config)", admin.PTYWhitelistAdd),
					whitelistEdit(e, "rm", "take these keys off (their open sessions stay open)", admin.PTYWhitelistRemove),
				},
			},
		},
	}
}

func whitelistEdit(e env, name, usage string, op admin.Op[admin.PTYKeys, admin.PTYAccess]) *ucli.Command {
	return &ucli.Command{
		Name: name, Usage: usage, ArgsUsage: "PK [PK…]", Flags: rpcFlags(true),
		Action: func(c *ucli.Context) error {
			if c.NArg() == 0 {
				return usagef("%s needs at least one public key", name)
			}
			var keys []cipher.PubKey
			for _, a := range c.Args().Slice() {
				pk, err := cipher.ParsePubKey(a)
				if err != nil {
					return usagef("%q: %v", a, err)
				}
				keys = append(keys, pk)
			}
			acc, err := call(c, op, admin.PTYKeys{Keys: keys})
			if err != nil {
				return err
			}
			return printAccess(e, c, acc)
		},
	}
}

func printAccess(e env, c *ucli.Context, acc admin.PTYAccess) error {
	if c.Bool("json") {
		return printJSON(e.stdout, acc)
	}
	if !acc.Supported {
		fmt.Fprintln(e.stdout, "this visor's system has no remote shell host: every session is refused")
	}
	if len(acc.Whitelist) == 0 {
		fmt.Fprintln(e.stdout, "no key is whitelisted")
	}
	for _, pk := range acc.Whitelist {
		fmt.Fprintln(e.stdout, pk.Hex())
	}
	hv := "may not"
	if acc.Hypervisors {
		hv = "may"
	}
	fmt.Fprintf(e.stdout, "this visor's hypervisors %s open a shell (dmsgpty.hypervisors); %d sessions open now\n", hv, acc.Sessions)
	return nil
}

// openPTY opens a session on the visor pk ("" or this visor's key: here)
// through the local visor.
func openPTY(c *ucli.Context, pkArg string, req dmsgpty.Request) (*dmsgpty.Session, error) {
	var pk cipher.PubKey
	if pkArg != "" {
		var err error
		if pk, err = cipher.ParsePubKey(pkArg); err != nil {
			return nil, usagef("%q: %v", pkArg, err)
		}
	}
	client, err := clientFor(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	rwc, err := admin.DialUpgrade(ctx, client, admin.OpenPTY, admin.PTYRequest{PK: pk})
	if err != nil {
		return nil, ucli.Exit(unreachableHint(err).Error(), exitPTYFailed)
	}
	s, err := dmsgpty.Open(rwc, req)
	if err != nil {
		var re *dmsgpty.RefusedError
		where := "this visor"
		if !pk.IsNull() {
			where = "visor " + pk.Short()
		}
		if errors.As(err, &re) {
			return nil, ucli.Exit(fmt.Sprintf("%s refused the session: %s", where, re.Reason), exitPTYFailed)
		}
		return nil, ucli.Exit(fmt.Sprintf("%s: %v", where, err), exitPTYFailed)
	}
	return s, nil
}

// fdOf is f's descriptor if it is a terminal.
func fdOf(f any) (int, bool) {
	file, ok := f.(*os.File)
	if !ok || !term.IsTerminal(int(file.Fd())) {
		return 0, false
	}
	return int(file.Fd()), true
}

func ptyStart(e env, c *ucli.Context) error {
	if c.NArg() > 1 {
		return usagef("start takes one public key (to run a command, use `dmsgpty exec PK -- COMMAND`)")
	}
	in, inTTY := fdOf(e.stdin)
	out, outTTY := fdOf(e.stdout)
	if !inTTY || !outTTY {
		return usagef("start needs a terminal on stdin and stdout; for scripts use `dmsgpty exec PK -- COMMAND`")
	}
	rows, cols := 24, 80
	if w, h, err := term.GetSize(out); err == nil {
		rows, cols = h, w
	}
	s, err := openPTY(c, c.Args().First(), dmsgpty.Request{Mode: dmsgpty.ModeShell, Term: os.Getenv("TERM"), Rows: uint16(rows), Cols: uint16(cols)})
	if err != nil {
		return err
	}
	defer s.Close()
	old, err := term.MakeRaw(in)
	if err != nil {
		return fmt.Errorf("putting the terminal in raw mode: %w", err)
	}
	defer term.Restore(in, old)
	stopResize := watchSize(out, func(rows, cols int) { s.Resize(uint16(rows), uint16(cols)) })
	defer stopResize()
	go io.Copy(s, e.stdin) // keys, Ctrl-C included, go to the remote terminal
	code, reason, err := s.Copy(e.stdout, e.stderr)
	term.Restore(in, old)
	return ptyEnd(e, code, reason, err)
}

// ptyEnd reports how a session ended and exits with the program's status.
func ptyEnd(e env, code int, reason string, err error) error {
	if err != nil {
		return ucli.Exit("the session broke: "+err.Error(), exitPTYFailed)
	}
	if reason != "" {
		fmt.Fprintf(e.stderr, "\nthe visor ended the session: %s\n", reason)
	}
	if code < 0 || code > 254 {
		code = exitPTYFailed
	}
	if code != 0 {
		return ucli.Exit("", code)
	}
	return nil
}

func ptyExec(e env, c *ucli.Context) error {
	args := c.Args().Slice()
	if len(args) > 1 && args[1] == "--" {
		args = append(args[:1], args[2:]...)
	}
	if len(args) < 2 {
		return usagef("exec needs a public key and a command: dmsgpty exec PK -- COMMAND [ARG…]")
	}
	req := dmsgpty.Request{Mode: dmsgpty.ModeExec, Argv: args[1:], TTY: c.Bool("tty")}
	in, inTTY := fdOf(e.stdin)
	if req.TTY {
		req.Term = os.Getenv("TERM")
		if out, ok := fdOf(e.stdout); ok {
			if w, h, err := term.GetSize(out); err == nil {
				req.Rows, req.Cols = uint16(h), uint16(w)
			}
		}
	}
	if _, err := cipher.ParsePubKey(args[0]); err != nil {
		return usagef("exec PK -- COMMAND: %q is not a public key (%v)", args[0], err)
	}
	s, err := openPTY(c, args[0], req)
	if err != nil {
		return err
	}
	defer s.Close()
	if req.TTY && inTTY {
		old, err := term.MakeRaw(in)
		if err == nil {
			defer term.Restore(in, old)
		}
	} else {
		// Without a terminal, Ctrl-C and SIGTERM are passed to the program.
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		go func() {
			for sig := range sigs {
				if sig == syscall.SIGTERM {
					s.Signal("TERM")
				} else {
					s.Signal("INT")
				}
			}
		}()
	}
	go func() {
		if e.stdin != nil {
			io.Copy(s, e.stdin)
		}
		s.CloseInput()
	}()
	if c.Bool("json") {
		var out, errb strings.Builder
		code, reason, err := s.Copy(&out, &errb)
		if err != nil {
			return ucli.Exit("the session broke: "+err.Error(), exitPTYFailed)
		}
		printJSON(e.stdout, struct {
			Stdout   string `json:"stdout"`
			Stderr   string `json:"stderr"`
			ExitCode int    `json:"exit_code"`
			Reason   string `json:"reason,omitempty"`
		}{out.String(), errb.String(), code, reason})
		return ptyEnd(env{stderr: io.Discard}, code, "", nil)
	}
	code, reason, err := s.Copy(e.stdout, e.stderr)
	return ptyEnd(e, code, reason, err)
}
