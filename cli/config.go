package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/internal/configfile"
	"github.com/skyfleet/skywire/visor"
)

// configCommand is `cli config`: the reference's config verbs.
func configCommand(e env) *ucli.Command {
	gen := visorGenConfigCommand(e)
	gen.Name, gen.Aliases = "gen", []string{"gen-config"}
	return &ucli.Command{
		Name:  "config",
		Usage: "visor configs: gen, check, gen-keys, migrate",
		Subcommands: []*ucli.Command{
			gen,
			configCheckCommand(e),
			genKeysCommand(e),
			migrateCommand(e),
		},
	}
}

// checkResult is `config check --json`'s answer.
type checkResult struct {
	Path     string   `json:"path"`
	Kind     string   `json:"kind"` // visor or hypervisor
	Valid    bool     `json:"valid"`
	PK       string   `json:"pk,omitempty"`
	Problems []string `json:"problems,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// configCheckCommand is Nebula's -test: exit 0 for a config the visor would
// run with, else 1 and every problem.
func configCheckCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:      "check",
		Usage:     "check a visor config as the visor would read it: exit 0, or 1 with every problem",
		ArgsUsage: "FILE",
		Flags:     []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("check takes the config file, got %d arguments", c.NArg())
			}
			path := c.Args().First()
			res := checkResult{Path: path, Kind: "visor"}
			var pk string
			var err error
			if isHypervisorConfig(path) {
				res.Kind = "hypervisor"
				var hc *hypervisor.Config
				if hc, err = hypervisor.LoadConfig(path); err == nil {
					pk = hc.PK.Hex()
				}
			} else {
				var vc *visor.Config
				if vc, err = visor.LoadConfig(path); err == nil {
					pk = vc.PK.Hex()
				}
			}
			if err != nil {
				msg := err.Error()
				if _, body, ok := strings.Cut(msg, "is not valid:\n"); ok {
					msg = body
				}
				res.Problems = strings.Split(strings.TrimSpace(msg), "\n")
			} else {
				res.Valid, res.PK = true, pk
			}
			if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
				res.Warnings = append(res.Warnings, fmt.Sprintf("mode %04o: the file holds the secret key; others may read it (chmod 600 %s)", fi.Mode().Perm(), path))
			}
			if c.Bool("json") {
				if err := printJSON(e.stdout, res); err != nil {
					return err
				}
			} else {
				for _, w := range res.Warnings {
					fmt.Fprintf(e.stderr, "warning: %s\n", w)
				}
				if res.Valid {
					fmt.Fprintf(e.stdout, "%s: a valid %s config (public key %s)\n", path, res.Kind, res.PK)
				}
			}
			if !res.Valid {
				if c.Bool("json") {
					return ucli.Exit("", ExitFail)
				}
				return fmt.Errorf("%s is not valid:\n  %s", path, strings.Join(res.Problems, "\n  "))
			}
			return nil
		},
	}
}

// isHypervisorConfig reports whether the JSON file at path is a hypervisor's
// config (it has db_path and http_addr at the top, which a visor's has
// only inside "hypervisor").
func isHypervisorConfig(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(b, &top) != nil {
		return false
	}
	_, db := top["db_path"]
	_, http := top["http_addr"]
	return db && http
}

func genKeysCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:  "gen-keys",
		Usage: "print a new key pair (the secret key too: keep it secret)",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *ucli.Context) error {
			pk, sk := cipher.GenerateKeyPair()
			if c.Bool("json") {
				return printJSON(e.stdout, map[string]string{"pk": pk.Hex(), "sk": sk.Hex()})
			}
			_, err := fmt.Fprintf(e.stdout, "pk: %s\nsk: %s\n", pk.Hex(), sk.Hex())
			return err
		},
	}
}

// migrateResult is `config migrate --json`'s answer.
type migrateResult struct {
	Path    string   `json:"path"`
	PK      string   `json:"pk"`
	NotKept []string `json:"not_kept"`
}

func migrateCommand(e env) *ucli.Command {
	return &ucli.Command{
		Name:      "migrate",
		Usage:     "turn a reference Skywire v1.x skywire-config.json into a config of this visor",
		ArgsUsage: "OLD-FILE",
		Description: "Keeps the keys, the services, stcp's pk_table, the apps and their settings, the hypervisors,\n" +
			"persistent transports, min hops and paths; lists what has no place here and why. The old file is\n" +
			"not touched; the new one is written to -o (never over an existing file unless -f).",
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: defaultVisorConfig, Usage: "file to write"},
			&ucli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace an existing file (the old one is kept as FILE.bak)"},
			&ucli.BoolFlag{Name: "stdout", Aliases: []string{"n"}, Usage: "print the config instead of writing it"},
			&ucli.BoolFlag{Name: "json", Usage: "report as JSON"},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 {
				return usagef("migrate takes the old config file, got %d arguments", c.NArg())
			}
			raw, err := os.ReadFile(c.Args().First())
			if err != nil {
				return err
			}
			cfg, notKept, err := migrateV1(raw)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Args().First(), err)
			}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("the migrated config is not valid (fix the old file or the new one):\n%w", err)
			}
			out := c.String("output")
			if c.Bool("stdout") {
				for _, n := range notKept {
					fmt.Fprintf(e.stderr, "not kept: %s\n", n)
				}
				b, err := configfile.Marshal(cfg)
				if err != nil {
					return err
				}
				_, err = e.stdout.Write(b)
				return err
			}
			if err := writeConfig(out, cfg, c.Bool("force")); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(e.stdout, migrateResult{Path: out, PK: cfg.PK.Hex(), NotKept: append([]string{}, notKept...)})
			}
			fmt.Fprintf(e.stdout, "wrote %s (public key %s)\n", out, cfg.PK)
			if len(notKept) > 0 {
				fmt.Fprintf(e.stdout, "not kept (%d):\n", len(notKept))
				for _, n := range notKept {
					fmt.Fprintf(e.stdout, "  - %s\n", n)
				}
			}
			fmt.Fprintf(e.stdout, "check it with `skywire cli config check %s`\n", out)
			return nil
		},
	}
}

// writeConfig writes cfg to path: a new file, or with replace over an
// existing one kept as path.bak.
func writeConfig(path string, cfg any, replace bool) error {
	if !replace {
		err := configfile.Create(path, cfg)
		if errors.Is(err, configfile.ErrExists) {
			return fmt.Errorf("%s already exists and was left as it is: -f replaces it (keeping a backup)", path)
		}
		return err
	}
	if old, err := os.ReadFile(path); err == nil {
		if err := configfile.WriteFile(path+".bak", old, configfile.Mode, true); err != nil {
			return fmt.Errorf("keeping a backup of %s: %w", path, err)
		}
	}
	return configfile.Save(path, cfg)
}

// v1Config is what migrate reads of a reference v1.x skywire-config.json.
type v1Config struct {
	Version string `json:"version"`
	SK      string `json:"sk"`
	PK      string `json:"pk"`
	Dmsg    struct {
		Discovery     string          `json:"discovery"`
		SessionsCount int             `json:"sessions_count"`
		Servers       json.RawMessage `json:"servers"`
		ServersType   string          `json:"servers_type"`
	} `json:"dmsg"`
	Dmsgpty *struct {
		DmsgPort  int      `json:"dmsg_port"`
		Whitelist []string `json:"whitelist"`
	} `json:"dmsgpty"`
	STCP *struct {
		PKTable          map[string]string `json:"pk_table"`
		ListeningAddress string            `json:"listening_address"`
	} `json:"skywire-tcp"`
	Transport struct {
		Discovery         string          `json:"discovery"`
		AddressResolver   string          `json:"address_resolver"`
		PublicAutoconnect bool            `json:"public_autoconnect"`
		TransportSetup    []string        `json:"transport_setup"`
		LogStore          json.RawMessage `json:"log_store"`
		STCPRPort         int             `json:"stcpr_port"`
		SUDPHPort         int             `json:"sudph_port"`
	} `json:"transport"`
	Routing struct {
		RouteSetupNodes []string `json:"route_setup_nodes"`
		RouteFinder     string   `json:"route_finder"`
		MinHops         int      `json:"min_hops"`
	} `json:"routing"`
	UptimeTracker *struct {
		Addr string `json:"addr"`
	} `json:"uptime_tracker"`
	Launcher struct {
		ServiceDiscovery string `json:"service_discovery"`
		Apps             []struct {
			Name      string   `json:"name"`
			Binary    string   `json:"binary"`
			Args      []string `json:"args"`
			AutoStart bool     `json:"auto_start"`
			Port      uint16   `json:"port"`
		} `json:"apps"`
		ServerAddr    string `json:"server_addr"`
		BinPath       string `json:"bin_path"`
		DisplayNodeIP bool   `json:"display_node_ip"`
	} `json:"launcher"`
	SurveyWhitelist      []string `json:"survey_whitelist"`
	Hypervisors          []string `json:"hypervisors"`
	CLIAddr              string   `json:"cli_addr"`
	LogLevel             string   `json:"log_level"`
	LocalPath            string   `json:"local_path"`
	DmsghttpServerPath   string   `json:"dmsghttp_server_path"`
	StunServers          []string `json:"stun_servers"`
	ShutdownTimeout      any      `json:"shutdown_timeout"`
	IsPublic             bool     `json:"is_public"`
	PersistentTransports []struct {
		PK   string `json:"pk"`
		Type string `json:"type"`
	} `json:"persistent_transports"`
	Hypervisor *struct {
		DBPath      string `json:"db_path"`
		EnableAuth  bool   `json:"enable_auth"`
		HTTPAddr    string `json:"http_addr"`
		EnableTLS   bool   `json:"enable_tls"`
		TLSCertFile string `json:"tls_cert_file"`
		TLSKeyFile  string `json:"tls_key_file"`
	} `json:"hypervisor"`
}

// migrateV1 maps a reference v1.x config onto ours: what it keeps, and in
// words what it cannot.
func migrateV1(raw []byte) (*visor.Config, []string, error) {
	var old v1Config
	if err := json.Unmarshal(raw, &old); err != nil {
		return nil, nil, fmt.Errorf("not a Skywire config (JSON): %w", err)
	}
	if old.SK == "" {
		return nil, nil, errors.New(`no "sk": not a reference Skywire visor config`)
	}
	if major, _, _ := strings.Cut(strings.TrimPrefix(old.Version, "v"), "."); major != "1" {
		return nil, nil, fmt.Errorf("version %q: migrate reads reference Skywire v1.x configs", old.Version)
	}
	sk, err := cipher.ParseSecKey(old.SK)
	if err != nil {
		return nil, nil, fmt.Errorf("sk: %w", err)
	}
	if old.PK != "" && old.PK != sk.PubKey().Hex() {
		return nil, nil, errors.New("pk is not sk's public key: the file is damaged")
	}
	cfg := visor.DefaultConfig(sk)
	var notKept []string
	drop := func(format string, args ...any) { notKept = append(notKept, fmt.Sprintf(format, args...)) }
	keys := func(field string, hexes []string) []cipher.PubKey {
		out := []cipher.PubKey{}
		for _, h := range hexes {
			pk, err := cipher.ParsePubKey(h)
			if err != nil {
				drop("%s %q: %v", field, h, err)
				continue
			}
			out = append(out, pk)
		}
		return out
	}

	switch d := old.Dmsg.Discovery; {
	case strings.HasPrefix(d, "dmsg://"):
		drop("dmsg.discovery %s: services reached over dmsg (dmsghttp) are not supported; give the HTTP URL", d)
	default:
		cfg.Dmsg.Discovery = d
	}
	cfg.Dmsg.SessionsCount = min(max(old.Dmsg.SessionsCount, 1), 64)
	if s := strings.TrimSpace(string(old.Dmsg.Servers)); s != "" && s != "null" && s != "[]" {
		drop("dmsg.servers: static servers (dmsghttp mode) are not supported; servers come from the dmsg discovery")
	}
	if t := old.Dmsg.ServersType; t != "" && t != "all" {
		drop("dmsg.servers_type %q: list the servers you trust in dmsg.trusted_servers instead", t)
	}
	if old.Dmsgpty != nil {
		cfg.Dmsgpty.Whitelist = keys("dmsgpty.whitelist", old.Dmsgpty.Whitelist)
		if p := old.Dmsgpty.DmsgPort; p != 0 && p != 22 {
			drop("dmsgpty.dmsg_port %d: the remote shell is always on dmsg port 22", p)
		}
	}
	if old.STCP != nil {
		for h, addr := range old.STCP.PKTable {
			pk, err := cipher.ParsePubKey(h)
			if err != nil {
				drop("skywire-tcp.pk_table %q: %v", h, err)
				continue
			}
			cfg.STCP.PKTable[pk] = addr
		}
		cfg.STCP.LocalAddress = old.STCP.ListeningAddress
	}
	cfg.Transport.Discovery, cfg.Transport.AddressResolver = old.Transport.Discovery, old.Transport.AddressResolver
	cfg.Transport.PublicAutoconnect = old.Transport.PublicAutoconnect
	if p := old.Transport.STCPRPort; p != 0 {
		cfg.Transport.STCPRAddr = ":" + strconv.Itoa(p)
	}
	if p := old.Transport.SUDPHPort; p != 0 {
		cfg.Transport.SUDPHAddr = ":" + strconv.Itoa(p)
	}
	if len(old.Transport.TransportSetup) > 0 {
		drop("transport.transport_setup: there are no transport-setup nodes (visors add transports through their own admin API)")
	}
	if s := strings.TrimSpace(string(old.Transport.LogStore)); s != "" && s != "null" {
		drop("transport.log_store: per-transport byte counts are in `cli visor ls-tp` and the events stream, not in CSV files")
	}
	if len(old.Routing.RouteSetupNodes) > 0 {
		drop("routing.route_setup_nodes: routes are set up hop by hop by the visors on them, with no setup node")
	}
	cfg.Routing.RouteFinder, cfg.Routing.MinHops = old.Routing.RouteFinder, old.Routing.MinHops
	if old.UptimeTracker != nil && old.UptimeTracker.Addr != "" {
		drop("uptime_tracker.addr %s: there is no uptime tracker", old.UptimeTracker.Addr)
	}
	cfg.ServiceDiscovery = old.Launcher.ServiceDiscovery
	if a := old.Launcher.ServerAddr; a != "" {
		cfg.AppServerAddr = a
	}
	if p := old.Launcher.BinPath; p != "" {
		cfg.AppsPath = p
	}
	if old.Launcher.DisplayNodeIP {
		drop("launcher.display_node_ip: this visor never publishes its IP address in the service discovery")
	}
	if old.Launcher.Apps != nil {
		cfg.Apps = []visor.AppConfig{}
	}
	for _, a := range old.Launcher.Apps {
		args := a.Args
		if len(args) >= 2 && args[0] == "app" && args[1] == a.Name { // the multi-call binary's `skywire app NAME …`
			args = args[2:]
		}
		builtin := slices.ContainsFunc(appproto.Builtins, func(b appproto.Builtin) bool { return b.Name == a.Name })
		if !builtin && a.Binary != "" && a.Binary != a.Name && a.Binary != "skywire" {
			drop("launcher.apps %s: its binary %q must be named %s in apps_path (%s)", a.Name, a.Binary, a.Name, cfg.AppsPath)
		}
		cfg.Apps = append(cfg.Apps, visor.AppConfig{App: a.Name, AutoStart: a.AutoStart, Port: a.Port, Args: append([]string{}, args...)})
	}
	if len(old.SurveyWhitelist) > 0 {
		drop("survey_whitelist: there is no system survey")
	}
	for _, pk := range keys("hypervisors", old.Hypervisors) {
		cfg.Hypervisors = append(cfg.Hypervisors, visor.HypervisorConfig{PublicKey: pk})
	}
	if a := old.CLIAddr; a != "" && a != cfg.CLIAddr {
		drop("cli_addr %s: the admin API is the local socket %s (a TCP address needs a token: see docs/config.md); `skywire cli` finds it by default", a, cfg.CLIAddr)
	}
	if l := old.LogLevel; l != "" {
		cfg.LogLevel = l
	}
	if p := old.LocalPath; p != "" {
		cfg.LocalPath = p
	}
	if len(old.StunServers) > 0 {
		drop("stun_servers: NAT is probed through the address resolver, not STUN")
	}
	if old.DmsghttpServerPath != "" {
		drop("dmsghttp_server_path: services over dmsg (dmsghttp) are not supported")
	}
	if old.ShutdownTimeout != nil {
		drop("shutdown_timeout: the visor's shutdown is bounded by its own fixed grace")
	}
	cfg.Transport.Public = old.IsPublic
	for _, t := range old.PersistentTransports {
		pk, err := cipher.ParsePubKey(t.PK)
		if err != nil {
			drop("persistent_transports %q: %v", t.PK, err)
			continue
		}
		cfg.Transport.Persistent = append(cfg.Transport.Persistent, visor.PersistentTransport{PK: pk, Type: t.Type})
	}
	if h := old.Hypervisor; h != nil {
		lh := visor.DefaultLocalHypervisor()
		if h.HTTPAddr != "" {
			lh.HTTPAddr = h.HTTPAddr
		}
		if h.DBPath != "" {
			lh.DBPath = h.DBPath
			drop("hypervisor.db_path %s: kept as the path, but the reference's users database is not read: set the password again on first login", h.DBPath)
		}
		lh.EnableTLS = h.EnableTLS
		if h.TLSCertFile != "" {
			lh.TLSCertFile = h.TLSCertFile
		}
		if h.TLSKeyFile != "" {
			lh.TLSKeyFile = h.TLSKeyFile
		}
		if !h.EnableAuth {
			drop("hypervisor.enable_auth false: the hypervisor always asks for a password")
		}
		cfg.Hypervisor = lh
	}
	return &cfg, notKept, nil
}
