package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
	"github.com/skyfleet/skywire/internal/testnet"
	"github.com/skyfleet/skywire/svc/suite"
	"github.com/skyfleet/skywire/visor"
)

// demoReadyTimeout bounds the wait for the proxy to answer.
const demoReadyTimeout = 60 * time.Second

// demoApp is `skywire demo`: a private network on this machine.
func demoApp(e env) *ucli.App {
	return &ucli.App{
		Usage: "a complete private network on this machine",
		Description: "Starts the discovery services and N visors in a line (a—b—c…: each has a transport to the next only,\n" +
			"so routes between the ends are multi-hop), skysocks on the last visor and skysocks-client on the first,\n" +
			"serving SOCKS5 through a route across the whole line. Ctrl-C stops everything.",
		Flags: append([]ucli.Flag{
			&ucli.IntFlag{Name: "visors", Aliases: []string{"n"}, Value: 3, Usage: "how many visors (at least 2)"},
			&ucli.StringFlag{Name: "links", Value: "stcp", Usage: "transport types of the links a→b, b→c, … (comma-separated; the last repeats): stcp, stcpr, sudph, dmsg"},
			&ucli.StringFlag{Name: "socks-addr", Value: "127.0.0.1:1080", Usage: "where the first visor serves SOCKS5"},
			&ucli.StringFlag{Name: "web-addr", Value: "127.0.0.1:0", Usage: "a small web page the last visor's proxy can reach (port 0: any free port)"},
			&ucli.StringFlag{Name: "hypervisor-addr", Value: hypervisor.DefaultHTTPAddr, Usage: `where the hypervisor's web UI listens ("" runs none)`},
			&ucli.StringFlag{Name: "dir", Usage: "keep configs, sockets and logs here (default: a temporary directory, removed at exit)"},
			&ucli.BoolFlag{Name: "json", Usage: "print what runs where as JSON once ready"},
		}, logFlags()...),
		Action: func(c *ucli.Context) error { return runDemo(c, e) },
	}
}

// demoInfo is what runs where.
type demoInfo struct {
	Dir      string      `json:"dir"`
	Log      string      `json:"log"`
	Services []demoSvc   `json:"services"`
	Visors   []demoVisor `json:"visors"`
	SOCKS5   string      `json:"socks5"`
	// Hypervisor is the web UI managing every visor ("" if none runs).
	Hypervisor         string `json:"hypervisor,omitempty"`
	HypervisorPassword string `json:"hypervisor_password,omitempty"`
	Web                string `json:"web"`
	Path               string `json:"path"`
}

type demoSvc struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

type demoVisor struct {
	Name    string        `json:"name"`
	PK      cipher.PubKey `json:"pk"`
	Config  string        `json:"config"`
	CLIAddr string        `json:"cli_addr"`
	Apps    []string      `json:"apps"`
	Chat    string        `json:"chat"` // skychat's web UI
}

func linkTypes(spec string, n int) ([]string, error) {
	parts := strings.Split(spec, ",")
	out := make([]string, n)
	for i := range out {
		t := strings.TrimSpace(parts[min(i, len(parts)-1)])
		switch t {
		case "stcp", "stcpr", "sudph", "dmsg":
		default:
			return nil, usagef("--links: %q: want stcp, stcpr, sudph or dmsg", t)
		}
		out[i] = t
	}
	return out, nil
}

func runDemo(c *ucli.Context, e env) error {
	if c.NArg() > 0 {
		return usagef("demo takes no arguments")
	}
	n := c.Int("visors")
	if n < 2 || n > 16 {
		return usagef("--visors %d: want 2 to 16", n)
	}
	links, err := linkTypes(c.String("links"), n-1)
	if err != nil {
		return err
	}
	socksAddr := c.String("socks-addr")
	if _, _, err := net.SplitHostPort(socksAddr); err != nil {
		return usagef("--socks-addr: %v", err)
	}
	// Fail now, not from inside an app, if the SOCKS5 port is taken.
	if ln, err := net.Listen("tcp", socksAddr); err != nil {
		return fmt.Errorf("--socks-addr %s: %w (is another proxy running? pick another address)", socksAddr, err)
	} else {
		ln.Close()
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program to run the apps: %w", err)
	}
	dir := c.String("dir")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "skywire-demo"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "demo.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log, err := newLogger(logFile, logLevel(c, ""), c.String("log-format"))
	if err != nil {
		return err
	}
	defer log.Sync()
	restore := zap.RedirectStdLog(log.Named("lib"))
	defer restore()
	ctx, stop := signalContext(c.Context, log)
	defer stop()

	web, err := net.Listen("tcp", c.String("web-addr"))
	if err != nil {
		return fmt.Errorf("--web-addr: %w", err)
	}
	defer web.Close()

	// The hypervisor: its key goes into every visor's config, its port is
	// taken now so that a busy one fails early.
	hvAddr := c.String("hypervisor-addr")
	hpk, hsk := cipher.GenerateKeyPair()
	if hvAddr != "" {
		if ln, err := net.Listen("tcp", hvAddr); err != nil {
			return fmt.Errorf("--hypervisor-addr %s: %w (is a hypervisor running? give --hypervisor-addr 127.0.0.1:0 for any free port)", hvAddr, err)
		} else {
			ln.Close()
		}
	}
	// skychat on every visor, its UI on a free loopback port.
	chatAddrs := make([]string, n)
	for i := range chatAddrs {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("a port for skychat's UI: %w", err)
		}
		chatAddrs[i] = ln.Addr().String()
		ln.Close()
	}
	fmt.Fprintf(e.stderr, "starting the services and %d visors in %s …\n", n, dir)
	apps := func(i int, pks []cipher.PubKey) []visor.AppConfig {
		chat := visor.AppConfig{App: "skychat", Port: 1, AutoStart: true, Args: []string{"--addr", chatAddrs[i]}}
		switch i {
		case len(pks) - 1:
			return []visor.AppConfig{chat, {App: "skysocks", Port: 3, AutoStart: true, Args: []string{"--allow-local"}}}
		case 0:
			return []visor.AppConfig{chat, {App: "skysocks-client", Port: 13, AutoStart: true, Args: []string{"--srv", pks[len(pks)-1].Hex(), "--addr", socksAddr}}}
		}
		return []visor.AppConfig{chat}
	}
	tcfg := testnet.Config{Dir: dir, Visors: n, Links: links, Apps: apps, Executable: exe, Log: log}
	if hvAddr != "" {
		tcfg.Hypervisors = func(int, []cipher.PubKey) []cipher.PubKey { return []cipher.PubKey{hpk} }
	}
	net0, err := testnet.Start(ctx, tcfg)
	if err != nil {
		return fmt.Errorf("starting the demo network (logs: %s): %w", logPath, err)
	}
	defer net0.Close()
	hvDone := make(chan error, 1)
	var hv *hypervisor.Hypervisor
	var hvPassword string
	if hvAddr != "" {
		hcfg := hypervisor.DefaultConfig(hsk)
		hcfg.HTTPAddr = hvAddr
		hcfg.DBPath = filepath.Join(dir, "hypervisor.db")
		hcfg.Dmsg.Discovery = net0.Suite.URL(suite.DmsgDiscovery)
		hvPassword = demoPassword()
		if err := hypervisor.SetPassword(&hcfg, "", hvPassword); err != nil {
			return err
		}
		if hv, err = hypervisor.New(&hcfg, hypervisor.Options{Log: log.Named("hypervisor")}); err != nil {
			return fmt.Errorf("--hypervisor-addr: %w", err)
		}
		go func() { hvDone <- hv.Run(ctx) }()
	} else {
		hvDone <- nil
	}

	path := make([]string, n)
	for i, node := range net0.Nodes {
		path[i] = node.Name
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Hello from the skywire demo. If you asked through %s, this page came over a route %s.\n",
			socksAddr, strings.Join(path, " → "))
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(web)
	defer srv.Close()

	if err := waitProxy(ctx, net0); err != nil {
		return fmt.Errorf("%w (logs: %s)", err, logPath)
	}
	// The first visor may open a shell on the last (its remote shell).
	if err := whitelistFirst(ctx, net0); err != nil {
		return fmt.Errorf("%w (logs: %s)", err, logPath)
	}
	info := demoInfo{Dir: dir, Log: logPath, SOCKS5: socksAddr, Web: "http://" + web.Addr().String() + "/", Path: strings.Join(path, " → ")}
	if hv != nil {
		info.Hypervisor, info.HypervisorPassword = hv.URL(), hvPassword
	}
	for _, s := range net0.Suite.Names() {
		info.Services = append(info.Services, demoSvc{Name: string(s), URL: net0.Suite.URL(s)})
	}
	for i, node := range net0.Nodes {
		dv := demoVisor{Name: node.Name, PK: node.PK(), Config: node.ConfigPath, CLIAddr: node.CLIAddr(), Apps: []string{}, Chat: "http://" + chatAddrs[i] + "/"}
		for _, a := range apps(i, pksOf(net0)) {
			dv.Apps = append(dv.Apps, a.App)
		}
		info.Visors = append(info.Visors, dv)
	}
	if c.Bool("json") {
		if err := printJSON(e.stdout, info); err != nil {
			return err
		}
	} else {
		printDemo(e.stdout, info)
	}
	<-ctx.Done()
	fmt.Fprintln(e.stderr, "stopping the demo …")
	srv.Close()
	if err := <-hvDone; err != nil {
		log.Warn("the hypervisor stopped badly", zap.Error(err))
	}
	if err := net0.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// demoPassword is a random password for the demo's hypervisor, easy to
// type: four groups of four letters and digits.
func demoPassword() string {
	t := strings.ToLower(rand.Text())
	return t[:4] + "-" + t[4:8] + "-" + t[8:12] + "-" + t[12:16]
}

func pksOf(n *testnet.Network) []cipher.PubKey {
	out := make([]cipher.PubKey, len(n.Nodes))
	for i, node := range n.Nodes {
		out[i] = node.PK()
	}
	return out
}

// waitProxy waits until skysocks-client on the first visor reports its
// server reachable.
func waitProxy(ctx context.Context, n *testnet.Network) error {
	c, err := n.Client(0)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, demoReadyTimeout)
	defer cancel()
	last := ""
	for {
		apps, err := admin.Call(ctx, c, admin.ListApps, admin.Empty{})
		if err == nil {
			for _, a := range apps {
				if a.Name != "skysocks-client" {
					continue
				}
				if a.State == "errored" {
					return fmt.Errorf("skysocks-client failed: %s", a.Error)
				}
				if strings.HasPrefix(a.Status, "connected") {
					return nil
				}
				last = a.Status
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the proxy never came up (last status: %q)", last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func printDemo(w io.Writer, info demoInfo) {
	fmt.Fprintf(w, "skywire demo: a private network on this machine\n\nservices:\n")
	for _, s := range info.Services {
		fmt.Fprintf(w, "  %-20s %s\n", s.Name, s.URL)
	}
	fmt.Fprintf(w, "\nvisors (each linked to the next only):\n")
	for _, v := range info.Visors {
		apps := "-"
		if len(v.Apps) > 0 {
			apps = strings.Join(v.Apps, ", ")
		}
		fmt.Fprintf(w, "  %s  %s  apps: %s\n     chat: %s\n     control: skywire cli visor info --rpc %s\n", v.Name, v.PK.Hex(), apps, v.Chat, v.CLIAddr)
	}
	first, last := info.Visors[0], info.Visors[len(info.Visors)-1]
	if info.Hypervisor != "" {
		fmt.Fprintf(w, "\nhypervisor (web UI managing every visor, each with a Terminal): %s\n  log in with the password  %s\n", info.Hypervisor, info.HypervisorPassword)
	}
	fmt.Fprintf(w, "\nSOCKS5 proxy on %s, through the route %s\n\ntry:\n", info.SOCKS5, info.Path)
	fmt.Fprintf(w, "  curl --socks5-hostname %s %s\n", info.SOCKS5, info.Web)
	fmt.Fprintf(w, "  skywire cli status --rpc %s              (and: skywire cli doctor)\n", first.CLIAddr)
	fmt.Fprintf(w, "  skywire cli visor ping %s --rpc %s\n", last.PK.Hex(), first.CLIAddr)
	fmt.Fprintf(w, "  skywire cli visor bench %s --rpc %s\n", last.PK.Hex(), first.CLIAddr)
	fmt.Fprintf(w, "  skywire cli visor route ls --rpc %s\n", info.Visors[1].CLIAddr)
	fmt.Fprintf(w, "  skywire cli proxy status --rpc %s\n", first.CLIAddr)
	fmt.Fprintf(w, "  skywire cli dmsgpty exec %s --rpc %s -- uname -a    (a shell there: dmsgpty start)\n", last.PK.Hex(), first.CLIAddr)
	fmt.Fprintf(w, "\nlogs: %s\ndemo ready; Ctrl-C stops it.\n", info.Log)
}

// whitelistFirst lets the demo's first visor open a shell on its last one.
func whitelistFirst(ctx context.Context, n *testnet.Network) error {
	c, err := n.Client(len(n.Nodes) - 1)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, demoReadyTimeout)
	defer cancel()
	if _, err := admin.Call(ctx, c, admin.PTYWhitelistAdd, admin.PTYKeys{Keys: []cipher.PubKey{n.Nodes[0].PK()}}); err != nil {
		return fmt.Errorf("whitelisting %s for the remote shell: %w", n.Nodes[0].Name, err)
	}
	return nil
}
