package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
)

const defaultHypervisorConfig = "hypervisor-config.json"

// hypervisorApp is `skywire hypervisor` (also `hypervisor`).
func hypervisorApp(e env) *ucli.App {
	return &ucli.App{
		Usage:     "web UI managing many visors",
		UsageText: "hypervisor [FILE]\n   skywire hypervisor run [-c FILE]\n   skywire hypervisor gen-config [-o FILE]\n   skywire hypervisor passwd [-c FILE]",
		ArgsUsage: "[config file]",
		Flags:     hypervisorRunFlags(),
		Action:    func(c *ucli.Context) error { return runHypervisor(c, e) },
		Commands: []*ucli.Command{
			{
				Name:      "run",
				Usage:     "serve the web UI and REST API (default ./hypervisor-config.json)",
				ArgsUsage: "[config file]",
				Flags:     hypervisorRunFlags(),
				Action:    func(c *ucli.Context) error { return runHypervisor(c, e) },
			},
			{
				Name:  "gen-config",
				Usage: "write a new hypervisor config with a fresh key",
				Flags: append(genConfigFlags(defaultHypervisorConfig),
					&ucli.StringFlag{Name: "http-addr", Value: hypervisor.DefaultHTTPAddr, Usage: "where the web UI listens"},
					&ucli.StringFlag{Name: "dmsg-discovery", Usage: "dmsg discovery `URL` (overrides -t/--svc)"},
					&ucli.StringFlag{Name: "link-addr", Usage: "also take direct visor links (TCP + Noise XK) on this `host:port`, for a LAN without dmsg"},
				),
				Action: func(c *ucli.Context) error {
					return genConfig(c, e, func(sk cipher.SecKey, host string) (checkable, error) {
						cfg := hypervisor.DefaultConfig(sk)
						if host != "" {
							cfg.UseServices(host)
						}
						cfg.HTTPAddr = c.String("http-addr")
						cfg.LinkAddr = c.String("link-addr")
						if c.IsSet("dmsg-discovery") {
							cfg.Dmsg.Discovery = c.String("dmsg-discovery")
						}
						return &cfg, nil
					})
				},
			},
			{
				Name:        "passwd",
				Usage:       "set or reset the web UI's password (the hypervisor must be stopped)",
				Description: "Reads the new password from the terminal (twice), or from the first line of stdin when it is not\na terminal. Every session is logged out.",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config file", Value: defaultHypervisorConfig},
				},
				Action: func(c *ucli.Context) error {
					if c.NArg() > 0 {
						return usagef("passwd takes no arguments (the password is read from the terminal or stdin)")
					}
					path := c.String("config")
					cfg, err := loadHypervisorConfig(path)
					if err != nil {
						return err
					}
					pw, err := readNewPassword(e)
					if err != nil {
						return err
					}
					if err := hypervisor.SetPassword(cfg, path, pw); err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, "password set; every session was logged out")
					return nil
				},
			},
		},
	}
}

func hypervisorRunFlags() []ucli.Flag {
	return append([]ucli.Flag{
		&ucli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config file (or give it as the argument)", Value: defaultHypervisorConfig},
	}, logFlags()...)
}

func loadHypervisorConfig(path string) (*hypervisor.Config, error) {
	cfg, err := hypervisor.LoadConfig(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w\ncreate one with `skywire hypervisor gen-config -o %s` (add -t to use services on this machine)", err, path)
	}
	return cfg, err
}

func runHypervisor(c *ucli.Context, e env) error {
	path, err := configArg(c)
	if err != nil {
		return err
	}
	cfg, err := loadHypervisorConfig(path)
	if err != nil {
		return err
	}
	log, done, err := runLogger(c, e, cfg.LogLevel)
	if err != nil {
		return err
	}
	defer done()
	h, err := hypervisor.New(cfg, hypervisor.Options{ConfigPath: path, Log: log.Named("hypervisor")})
	if err != nil {
		return err
	}
	announceHypervisor(e.stderr, h)
	ctx, stop := signalContext(c.Context, log)
	defer stop()
	return h.Run(ctx)
}

// announceHypervisor tells the person at the terminal where the UI is and
// how to get in.
func announceHypervisor(w io.Writer, h *hypervisor.Hypervisor) {
	fmt.Fprintf(w, "hypervisor %s\n  web UI:  %s\n", h.PK(), h.URL())
	if code := h.SetupCode(); code != "" {
		fmt.Fprintf(w, "  no password is set yet: open the UI and use the one-time setup code  %s\n  (or stop the hypervisor and run `skywire hypervisor passwd`)\n", code)
	}
	fmt.Fprintf(w, "  visors list this key in their config's \"hypervisors\" to be managed here\n")
}

// readNewPassword reads a new password: twice from a terminal, or one line
// of stdin.
func readNewPassword(e env) (string, error) {
	if f, ok := e.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(e.stderr, "new password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if err := hypervisor.CheckPassword(string(a)); err != nil {
			return "", err
		}
		fmt.Fprint(e.stderr, "again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ; nothing was changed")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 4096)).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
