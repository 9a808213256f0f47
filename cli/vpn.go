package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/apps/sdk"
	"github.com/skyfleet/skywire/apps/vpn"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
)

// writeReport replaces the status file (through a temporary file, so a
// reader never sees half of one).
func writeReport(path string, r vpn.Report) {
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		os.Rename(tmp, path)
	}
}

// vpnServerApp is the vpn-server role (port 44).
func vpnServerApp(e env) *ucli.App {
	return &ucli.App{
		Flags: append([]ucli.Flag{
			passcodeFlag("require this passcode of clients"), passcodeFileFlag(),
			&ucli.StringFlag{Name: "netifc", Usage: "the interface clients' traffic leaves by (default: the default route's)"},
			&ucli.BoolFlag{Name: "secure", Value: true, Usage: "keep clients out of this host and its networks"},
			&ucli.StringFlag{Name: "pool", Value: vpn.DefaultPool.String(), Usage: "the IPv4 block clients' /30s come from"},
			&ucli.StringFlag{Name: "state", Value: "vpn-server-state.json", Usage: "where the host changes are recorded (restored at stop, or at the next start after a crash)"},
		}, append(advertiseFlags(), logFlags()...)...),
		Action: func(c *ucli.Context) error {
			pool, err := netip.ParsePrefix(c.String("pool"))
			if err != nil {
				return usagef("--pool: %v", err)
			}
			pc, err := passcode(c)
			if err != nil {
				return err
			}
			return runApp(c, e, "vpn-server", func(ctx context.Context, client *sdk.Client, log *zap.Logger) error {
				srv, err := vpn.NewServer(vpn.ServerConfig{Pool: pool, Passcode: pc, Netifc: c.String("netifc"),
					Secure: c.Bool("secure"), StatePath: c.String("state"), Log: log})
				if err != nil {
					return err
				}
				l, err := client.Listen(client.Port())
				if err != nil {
					return err
				}
				defer l.Close()
				client.SetStatus("serving VPN clients at " + l.Addr().String())
				advertise(c, client, "vpn", log)
				return srv.Serve(ctx, rpcListener{l})
			})
		},
	}
}

// vpnClientApp is the vpn-client role (port 43).
func vpnClientApp(e env) *ucli.App {
	return &ucli.App{
		Flags: append([]ucli.Flag{
			&ucli.StringFlag{Name: "srv", Usage: "the vpn-server's visor `public key`"},
			passcodeFlag("the server's passcode, if it has one"), passcodeFileFlag(),
			&ucli.BoolFlag{Name: "killswitch", Usage: "let nothing out but through the tunnel, also while reconnecting"},
			&ucli.StringSliceFlag{Name: "dns", Usage: "resolvers to use while connected, reached through the tunnel (comma-separated)"},
			&ucli.StringFlag{Name: "state", Value: appproto.VPNClientState, Usage: "where the host changes are recorded (restored at stop, or at the next start after a crash)"},
			&ucli.BoolFlag{Name: "restore", Usage: "only restore what a killed client left on the host (from --state), then exit"},
			&ucli.BoolFlag{Name: "no-offload", Usage: "carry plain packets (no TUN segmentation offload)"},
		}, logFlags()...),
		Action: func(c *ucli.Context) error {
			if c.Bool("restore") {
				log, done, err := serviceLogger(c, e)
				if err != nil {
					return err
				}
				defer done()
				_, err = vpn.Restore(c.String("state"), log)
				return err
			}
			srv, err := cipher.ParsePubKey(c.String("srv"))
			if err != nil {
				return usagef("--srv: %v (the vpn-server's visor key)", err)
			}
			pc, err := passcode(c)
			if err != nil {
				return err
			}
			var dns []netip.Addr
			for _, s := range c.StringSlice("dns") {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return usagef("--dns: %v", err)
				}
				dns = append(dns, a)
			}
			return runApp(c, e, "vpn-client", func(ctx context.Context, client *sdk.Client, log *zap.Logger) error {
				cl, err := vpn.NewClient(vpn.ClientConfig{
					Passcode: pc, DNS: dns, Killswitch: c.Bool("killswitch"), StatePath: c.String("state"), NoOffload: c.Bool("no-offload"),
					Dial:   func(ctx context.Context) (net.Conn, error) { return client.DialRPC(ctx, srv, vpn.ServerPort) },
					Bypass: client.Bypass,
					Status: func(s string) { client.SetStatus(s) },
					Server: srv.Hex(),
					Report: func(r vpn.Report) { writeReport(appproto.VPNClientStatus, r) },
					Log:    log,
				})
				if err != nil {
					return err
				}
				return cl.Run(ctx)
			})
		},
	}
}
