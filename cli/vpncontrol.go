package cli

import (
	"fmt"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
)

// vpnCommand is `cli vpn …`: vpn-client.
func vpnCommand(e env) *ucli.Command {
	print := func(c *ucli.Context, st admin.VPNStatus) error {
		if c.Bool("json") {
			return printJSON(e.stdout, st)
		}
		state := "not connected"
		switch {
		case st.Connected:
			state = "connected"
		case st.App.State == "running":
			state = "connecting"
		}
		rows := [][2]string{{"state", state}, {"app", appState(st.App)}}
		if st.Server != "" {
			rows = append(rows, [2]string{"server", st.Server})
		}
		if st.Connected {
			rows = append(rows,
				[2]string{"tunnel address", st.Address},
				[2]string{"since", st.Since.Local().Format(time.DateTime) + " (" + time.Since(st.Since).Round(time.Second).String() + ")"},
				[2]string{"up / down", fmt.Sprintf("%s / %s", bytesIEC(st.Up), bytesIEC(st.Down))},
				[2]string{"rate up / down", fmt.Sprintf("%s/s / %s/s", bytesIEC(uint64(st.UpRate)), bytesIEC(uint64(st.DownRate)))},
				[2]string{"latency", fmt.Sprintf("%.1f ms", st.LatencyMS)})
		}
		rows = append(rows, [2]string{"kill switch", map[bool]string{true: "on", false: "off"}[st.Killswitch]})
		if st.LastError != "" {
			rows = append(rows, [2]string{"last error", st.LastError})
		}
		if st.Restored {
			rows = append(rows, [2]string{"restored", "what a killed client left on the host"})
		}
		return printTable(e.stdout, rows)
	}
	return &ucli.Command{
		Name:  "vpn",
		Usage: "the full-tunnel VPN client (vpn-client)",
		Subcommands: []*ucli.Command{
			listServicesCommand(e, "vpn", "VPN servers"),
			{
				Name:      "start",
				Usage:     "send all traffic through the vpn-server on a visor (saved in the config)",
				ArgsUsage: "<public key> | --best",
				Flags: append(append(rpcFlags(true), bestFlags()...),
					&ucli.StringFlag{Name: "passcode", Usage: "the server's passcode, if it has one"},
					&ucli.BoolFlag{Name: "killswitch", Usage: "let nothing out but through the tunnel, also while reconnecting"},
					&ucli.StringSliceFlag{Name: "dns", Usage: "resolvers to use while connected (comma-separated)"},
				),
				Action: func(c *ucli.Context) error {
					pk, err := serverArg(c, e, "vpn", "vpn start")
					if err != nil {
						return err
					}
					st, err := call(c, admin.StartVPN, admin.VPNRequest{Server: pk, Passcode: c.String("passcode"), Killswitch: c.Bool("killswitch"), DNS: c.StringSlice("dns")})
					if err != nil {
						return err
					}
					return print(c, st)
				},
			},
			{
				Name:  "stop",
				Usage: "stop the VPN and restore the host (also after a killed client)",
				Flags: rpcFlags(true),
				Action: func(c *ucli.Context) error {
					if c.NArg() > 0 {
						return usagef("vpn stop takes no arguments")
					}
					st, err := call(c, admin.StopVPN, admin.Empty{})
					if err != nil {
						return err
					}
					return print(c, st)
				},
			},
			{
				Name:  "status",
				Usage: "connected to, tunnel address, since, bytes, rate, latency, kill switch, last error",
				Flags: rpcFlags(true),
				Action: func(c *ucli.Context) error {
					st, err := call(c, admin.GetVPN, admin.Empty{})
					if err != nil {
						return err
					}
					return print(c, st)
				},
			},
		},
	}
}

// bytesIEC is n in B, KiB, MiB, GiB.
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
