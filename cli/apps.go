package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/apps/sdk"
	"github.com/skyfleet/skywire/apps/skysocks"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
)

// runApp runs a built-in app: its logger (the visor collects its output),
// its link to the visor, and a context ended by SIGTERM (how the visor
// stops it).
func runApp(c *ucli.Context, e env, name string, run func(ctx context.Context, client *sdk.Client, log *zap.Logger) error) error {
	if c.NArg() > 0 {
		return usagef("%s takes no arguments, got %q", name, c.Args().First())
	}
	log, done, err := serviceLogger(c, e)
	if err != nil {
		return err
	}
	defer done()
	if os.Getenv(appproto.EnvKey) == "" {
		// Run by hand (a symlink on a router): attach to the local visor.
		if err := attachToVisor(c.Context, name, log); err != nil {
			return err
		}
	}
	client, err := sdk.FromEnv()
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, stop := signalContext(c.Context, log)
	defer stop()
	return run(ctx, client, log.Named(name))
}

// attachToVisor registers this process with the visor at SKYWIRE_CLI_ADDR
// (default: the admin socket) as its app name, and takes on the
// environment and working directory the visor gives.
func attachToVisor(ctx context.Context, name string, log *zap.Logger) error {
	addr := os.Getenv("SKYWIRE_CLI_ADDR")
	if addr == "" {
		addr = admin.DefaultAddr()
	}
	token := ""
	if f := os.Getenv("SKYWIRE_CLI_TOKEN_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		token = strings.TrimSpace(string(b))
	}
	ac, err := admin.NewClient(addr, token)
	if err != nil {
		return err
	}
	defer ac.Close()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := admin.Call(cctx, ac, admin.AttachApp, admin.AttachRequest{Name: name, PID: os.Getpid()})
	if err != nil {
		return fmt.Errorf("%s was not started by a visor (no %s), and attaching to the visor at %s failed: %w (set SKYWIRE_CLI_ADDR to its cli_addr)", name, appproto.EnvKey, addr, err)
	}
	for k, v := range r.Env {
		os.Setenv(k, v)
	}
	if err := os.Chdir(r.Dir); err != nil {
		return err
	}
	log.Info("attached to the local visor", zap.String("visor", addr), zap.String("dir", r.Dir))
	return nil
}

// rpcListener accepts connections without data sockets, so a proxy can
// join them to its local sockets after the handshake (sdk.RPCConn.Join).
type rpcListener struct{ *sdk.Listener }

func (l rpcListener) Accept() (net.Conn, error) {
	c, err := l.AcceptRPC()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// rpcDialer dials connections without data sockets (see rpcListener).
type rpcDialer struct{ c *sdk.Client }

func (d rpcDialer) Dial(ctx context.Context, pk cipher.PubKey, port uint16) (net.Conn, error) {
	c, err := d.c.DialRPC(ctx, pk, port)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// skysocksApp is the skysocks role: the SOCKS5 server on port 3.
func skysocksApp(e env) *ucli.App {
	return &ucli.App{
		Flags: append([]ucli.Flag{
			passcodeFlag("require this passcode of clients"), passcodeFileFlag(),
			&ucli.BoolFlag{Name: "allow-local", Usage: "let clients reach this machine and its private networks"},
		}, append(advertiseFlags(), logFlags()...)...),
		Action: func(c *ucli.Context) error {
			pc, err := passcode(c)
			if err != nil {
				return err
			}
			return runApp(c, e, "skysocks", func(ctx context.Context, client *sdk.Client, log *zap.Logger) error {
				l, err := client.Listen(client.Port())
				if err != nil {
					return err
				}
				defer l.Close()
				log.Info("serving SOCKS5", zap.Uint16("port", client.Port()), zap.Bool("passcode", pc != ""), zap.Bool("allow_local", c.Bool("allow-local")))
				client.SetStatus("serving SOCKS5 at " + l.Addr().String())
				advertise(c, client, "proxy", log)
				srv := skysocks.NewServer(skysocks.ServerConfig{Passcode: pc, AllowLocal: c.Bool("allow-local"), Log: log})
				return srv.Serve(ctx, rpcListener{l})
			})
		},
	}
}

// skysocksClientApp is the skysocks-client role: local SOCKS5 through a
// skysocks server.
func skysocksClientApp(e env) *ucli.App {
	return &ucli.App{
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "srv", Usage: "the skysocks server's visor `public key`"},
			&ucli.StringFlag{Name: "addr", Value: "127.0.0.1:1080", Usage: "local SOCKS5 address"},
			passcodeFlag("the server's passcode, if it has one"), passcodeFileFlag(),
			&ucli.StringFlag{Name: "http", Usage: "also serve an HTTP proxy (CONNECT and plain requests) on this `address`, e.g. 127.0.0.1:8080"},
		}, logFlags()...),
		Action: func(c *ucli.Context) error {
			pc, err := passcode(c)
			if err != nil {
				return err
			}
			var srv cipher.PubKey
			if s := c.String("srv"); s != "" {
				var err error
				if srv, err = cipher.ParsePubKey(s); err != nil {
					return usagef("--srv: %v", err)
				}
			}
			return runApp(c, e, "skysocks-client", func(ctx context.Context, client *sdk.Client, log *zap.Logger) error {
				cl, err := skysocks.NewClient(skysocks.ClientConfig{
					Server: srv, Passcode: pc, Log: log,
					Status: func(s string) { client.SetStatus(s) },
				}, rpcDialer{client})
				if err != nil {
					return err
				}
				l, err := net.Listen("tcp", c.String("addr"))
				if err != nil {
					return fmt.Errorf("--addr: %w (is another proxy running? pick another address)", err)
				}
				log.Info("serving SOCKS5", zap.String("addr", l.Addr().String()), zap.String("srv", srv.Hex()))
				if addr := c.String("http"); addr != "" {
					hl, err := net.Listen("tcp", addr)
					if err != nil {
						l.Close()
						return fmt.Errorf("--http: %w (is another proxy running? pick another address)", err)
					}
					log.Info("serving an HTTP proxy", zap.String("addr", hl.Addr().String()))
					errc := make(chan error, 1)
					go func() { errc <- cl.ServeHTTP(ctx, hl) }()
					err = cl.Serve(ctx, l)
					hl.Close()
					return errors.Join(err, <-errc)
				}
				return cl.Serve(ctx, l)
			})
		},
	}
}

// passcodeFlag is an app's --passcode, also read from $SKYWIRE_PASSCODE
// (how the visor hands it over: a command line shows in `ps`).
func passcodeFlag(usage string) ucli.Flag {
	return &ucli.StringFlag{Name: "passcode", EnvVars: []string{appproto.EnvPasscode}, Usage: usage + " (better: $" + appproto.EnvPasscode + " or --passcode-file; a command line shows in `ps`)"}
}

func passcodeFileFlag() ucli.Flag {
	return &ucli.StringFlag{Name: "passcode-file", Usage: "read the passcode from this file"}
}

// passcode is the app's passcode: --passcode-file's content, or --passcode
// (or $SKYWIRE_PASSCODE).
func passcode(c *ucli.Context) (string, error) {
	if f := c.String("passcode-file"); f != "" {
		if c.IsSet("passcode") {
			return "", usagef("give --passcode or --passcode-file, not both")
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("--passcode-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return c.String("passcode"), nil
}
