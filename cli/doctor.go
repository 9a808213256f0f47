package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/visor"
)

// check is one of doctor's findings.
type check struct {
	Name   string `json:"check"`
	Result string `json:"result"` // pass, warn, fail or skip
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Results.
const (
	pass = "pass"
	warn = "warn"
	fail = "fail"
	skip = "skip"
)

// maxClockOffset is how far a service's clock may be before doctor fails
// (signed requests are refused beyond 30 s).
const maxClockOffset = 10 * time.Second

// doctorCommand is `cli doctor`: every check a user would otherwise do by
// hand, each with a fix; exit 1 if any fails.
func doctorCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "doctor",
		Usage: "check the config, the visor, its services, the clock, dmsg, NAT, local ports and a route; exit 1 if any check fails",
		Flags: append(rpcFlags(true),
			&ucli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "the visor's config file (default: the running visor's)"},
			&ucli.StringFlag{Name: "peer", Usage: "a visor `key` to set a route to (default: the peer of the visor's first transport)"},
		),
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("doctor takes no arguments")
			}
			checks := runDoctor(c)
			failed := 0
			for _, ch := range checks {
				if ch.Result == fail {
					failed++
				}
			}
			if c.Bool("json") {
				if err := printJSON(e.stdout, checks); err != nil {
					return err
				}
			} else {
				marks := map[string]string{pass: "ok  ", warn: "WARN", fail: "FAIL", skip: "skip"}
				for _, ch := range checks {
					fmt.Fprintf(e.stdout, "[%s] %s: %s\n", marks[ch.Result], ch.Name, ch.Detail)
					if ch.Fix != "" && ch.Result != pass {
						fmt.Fprintf(e.stdout, "       fix: %s\n", ch.Fix)
					}
				}
			}
			if failed > 0 {
				msg := fmt.Sprintf("%d check(s) failed", failed)
				if c.Bool("json") {
					msg = ""
				}
				return ucli.Exit(msg, ExitFail)
			}
			return nil
		},
	}
}

// runDoctor runs the checks in order; later ones skip when what they need
// is missing.
func runDoctor(c *ucli.Context) []check {
	var out []check
	add := func(ch check) { out = append(out, ch) }

	st, err := call(c, admin.GetStatus, admin.Empty{})
	running := err == nil
	if !running {
		add(check{"visor", fail, fmt.Sprintf("the admin API at %s does not answer: %v", c.String("rpc"), err),
			"start the visor (`skywire visor run -c FILE`, or `systemctl start skywire`), or give --rpc its cli_addr"})
	} else {
		up := time.Duration(st.Info.UptimeSeconds * float64(time.Second)).Round(time.Second)
		add(check{"visor", pass, fmt.Sprintf("%s %s, up %s (pid %d)", st.Info.PK.Short(), st.Info.Version, up, st.PID), ""})
	}

	path := c.String("config")
	if path == "" && running {
		path = st.Info.ConfigPath
	}
	if path == "" { // as `skywire visor` would pick it
		for _, p := range []string{os.Getenv("SKYWIRE_CONFIG"), defaultVisorConfig, visor.SystemConfigPath} {
			if _, err := os.Stat(p); p != "" && err == nil {
				path = p
				break
			}
		}
	}
	var cfg *visor.Config
	switch {
	case path == "":
		add(check{"config", skip, "no config to check (the visor is not running, and there is no " + defaultVisorConfig + " here nor " + visor.SystemConfigPath + ")", "give it with --config FILE"})
	default:
		cfg, err = visor.LoadConfig(path)
		if err != nil {
			add(check{"config", fail, err.Error(), "fix what it names, then `skywire cli config check " + path + "`"})
		} else {
			add(check{"config", pass, path + " is valid", ""})
		}
		if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
			add(check{"config mode", fail, fmt.Sprintf("%s is mode %04o: it holds the secret key and others may read it", path, fi.Mode().Perm()), "chmod 600 " + path})
		} else if err == nil {
			add(check{"config mode", pass, fmt.Sprintf("%04o", fi.Mode().Perm()), ""})
		}
	}

	if running {
		if len(st.Services) == 0 {
			add(check{"services", warn, "none configured: only stcp transports to peers in stcp.pk_table can work", "`skywire visor gen-config --svc HOST -r -o CONFIG` (keeps the keys) points it at services"})
		}
		for _, s := range st.Services {
			if !s.OK {
				add(check{"service " + s.Name, fail, fmt.Sprintf("%s does not answer: %s", s.URL, s.Error),
					"is the service running and reachable from this host (firewall, URL in the config)?"})
				continue
			}
			add(check{"service " + s.Name, pass, fmt.Sprintf("%s answers in %.1f ms", s.URL, s.LatencyMS), ""})
			if off := time.Duration(s.ClockOffsetS * float64(time.Second)); off > maxClockOffset || off < -maxClockOffset {
				add(check{"clock vs " + s.Name, fail, fmt.Sprintf("this host's clock is %.0f s off the service's: signed requests more than 30 s off are refused", -s.ClockOffsetS),
					"sync the clock (timedatectl set-ntp true, or install chrony)"})
			} else {
				add(check{"clock vs " + s.Name, pass, fmt.Sprintf("within %.0f s", math.Abs(s.ClockOffsetS)), ""})
			}
		}
		dmsgWanted := false
		for _, s := range st.Services {
			dmsgWanted = dmsgWanted || s.Name == "dmsg_discovery"
		}
		switch {
		case !dmsgWanted:
			add(check{"dmsg", skip, "dmsg is off (no dmsg.discovery)", ""})
		case len(st.Info.DmsgServers) == 0:
			add(check{"dmsg", fail, "no session with a dmsg server", "does the dmsg discovery list a server (GET /v1/servers), and can this host reach its address? see `skywire cli visor log`"})
		default:
			add(check{"dmsg", pass, fmt.Sprintf("%d session(s)", len(st.Info.DmsgServers)), ""})
		}
		for _, r := range st.Reachability {
			name := r.Type + " from outside"
			switch r.NAT {
			case "":
				add(check{name, warn, "not yet seen by the address resolver", "is transport.address_resolver reachable? (UDP too, for sudph)"})
			case "none":
				add(check{name, pass, fmt.Sprintf("no NAT: peers reach %s", r.Seen), ""})
			case "port-preserving":
				add(check{name, warn, fmt.Sprintf("behind NAT (seen at %s, listening on %s), ports kept: peers cannot dial %s directly, hole punching (sudph) should work", r.Seen, r.Local, r.Type),
					"forward the port on the router for direct transports; dmsg works anyway"})
			default:
				add(check{name, warn, fmt.Sprintf("behind NAT that changes ports (seen at %s, listening on %s): a symmetric NAT may defeat sudph hole punching", r.Seen, r.Local),
					"use dmsg or stcpr through a forwarded port with such peers"})
			}
		}
	}

	if cfg != nil {
		out = append(out, portChecks(cfg, st, running)...)
	}

	if running {
		out = append(out, routeCheck(c, st))
		out = append(out, loopCheck(c, st))
	}
	return out
}

// loopCheck sets up a route from the visor to itself through the peer of
// its first transport: out and back, the whole route path (setup, both
// directions, end-to-end encryption) with no other visor's help.
func loopCheck(c *ucli.Context, st admin.Status) check {
	if len(st.Transports) == 0 {
		return check{"route to itself", skip, "no transport to loop through", "`skywire cli add-tp <key>`"}
	}
	via := st.Transports[0].RemotePK
	name := "route to itself via " + via.Short()
	res, err := ping(c, admin.PingRequest{PK: st.Info.PK, Via: via, Count: 2})
	if err != nil {
		return check{name, fail, err.Error(), "the neighbour refused or dropped the route: see `skywire cli visor ping " + st.Info.PK.Short() + " --via " + via.Short() + "`"}
	}
	return check{name, pass, fmt.Sprintf("out and back in %.1f ms (set up), %d round trips", res.SetupMS, len(res.RTTsMS)), ""}
}

// portChecks looks at each local port the visor's config asks for: in use
// by the visor (or its apps) is right; by anything else, the visor or the
// app cannot start.
func portChecks(cfg *visor.Config, st admin.Status, running bool) []check {
	ours := map[int]bool{}
	if running {
		ours[st.PID] = true
		for _, a := range st.Apps {
			if a.PID > 0 {
				ours[a.PID] = true
			}
		}
	}
	type want struct{ what, addr string }
	var wants []want
	if network, _, err := admin.ParseAddr(cfg.CLIAddr); err == nil && network == "tcp" {
		wants = append(wants, want{"cli_addr", cfg.CLIAddr})
	}
	if cfg.STCP.LocalAddress != "" {
		wants = append(wants, want{"stcp", cfg.STCP.LocalAddress})
	}
	for _, a := range cfg.Apps {
		for i, arg := range a.Args {
			if arg == "--addr" && i+1 < len(a.Args) && (a.AutoStart || appRunning(st, a.App)) {
				wants = append(wants, want{"app " + a.App, a.Args[i+1]})
			}
		}
	}
	if cfg.Hypervisor != nil {
		wants = append(wants, want{"hypervisor", cfg.Hypervisor.HTTPAddr})
	}
	if cfg.MetricsAddr != "" {
		wants = append(wants, want{"metrics_addr", cfg.MetricsAddr})
	}
	var out []check
	for _, w := range wants {
		name := "port " + w.addr + " (" + w.what + ")"
		_, portText, err := net.SplitHostPort(w.addr)
		port, _ := strconv.Atoi(portText)
		if err != nil || port == 0 {
			continue // a free port is picked at start
		}
		ln, err := net.Listen("tcp", w.addr)
		if err == nil {
			ln.Close()
			if running && (w.what == "stcp" || w.what == "cli_addr") {
				out = append(out, check{name, fail, "free, but the running visor should be listening there", "see `skywire cli visor log`"})
			} else {
				out = append(out, check{name, pass, "free", ""})
			}
			continue
		}
		if !errors.Is(err, fs.ErrPermission) && !strings.Contains(err.Error(), "address already in use") {
			out = append(out, check{name, fail, err.Error(), "fix the address in the config"})
			continue
		}
		pid, comm := portOwner(port)
		switch {
		case pid != 0 && ours[pid]:
			out = append(out, check{name, pass, fmt.Sprintf("in use by the visor (%s, pid %d)", comm, pid), ""})
		case pid != 0:
			out = append(out, check{name, fail, fmt.Sprintf("in use by %s (pid %d), not by this visor", comm, pid),
				fmt.Sprintf("stop it, or give %s another address in the config", w.what)})
		case running:
			out = append(out, check{name, pass, "in use (its owner is not visible to this user; run as root to see it)", ""})
		default:
			out = append(out, check{name, fail, "in use by another process", fmt.Sprintf("stop it, or give %s another address in the config", w.what)})
		}
	}
	return out
}

func appRunning(st admin.Status, name string) bool {
	for _, a := range st.Apps {
		if a.Name == name && a.State == "running" {
			return true
		}
	}
	return false
}

// routeCheck sets up a route to --peer, or to the peer of the first
// transport, and pings it.
func routeCheck(c *ucli.Context, st admin.Status) check {
	var peer string
	switch {
	case c.String("peer") != "":
		peer = c.String("peer")
	case len(st.Transports) > 0:
		peer = st.Transports[0].RemotePK.Hex()
	default:
		return check{"route", skip, "no transport and no --peer to set a route to", "`skywire cli add-tp <key>`, or `doctor --peer <key>`"}
	}
	pk, err := cipher.ParsePubKey(peer)
	if err != nil {
		return check{"route", fail, "--peer: " + err.Error(), ""}
	}
	name := "route to " + pk.Short()
	res, err := ping(c, admin.PingRequest{PK: pk, Count: 2})
	if err != nil {
		return check{name, fail, err.Error(), "see which hop refused, and `skywire cli visor ping " + pk.Short() + "`"}
	}
	var rtt float64
	for _, r := range res.RTTsMS {
		rtt += r
	}
	return check{name, pass, fmt.Sprintf("%d hop(s), set up in %.1f ms, round trip %.2f ms", len(res.Hops), res.SetupMS, rtt/float64(max(len(res.RTTsMS), 1))), ""}
}

// ping sets up a route and pings over it, within 15 s.
func ping(c *ucli.Context, req admin.PingRequest) (admin.PingResult, error) {
	return callWithin(c, 15*time.Second, admin.Ping, req)
}
