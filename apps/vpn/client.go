package vpn

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/internal/hostcfg"
	"github.com/skyfleet/skywire/internal/packets"
)

// ClientConfig configures vpn-client.
type ClientConfig struct {
	Passcode string
	// DNS, if set, are the resolvers used while connected (reached through
	// the tunnel).
	DNS []netip.Addr
	// Killswitch lets nothing out but through the tunnel and to the bypass
	// addresses, while connected and while reconnecting.
	Killswitch bool
	// StatePath is the state file of the host changes (hostcfg).
	StatePath string
	// Dial connects to the server (vpn-server's port on its visor).
	Dial func(ctx context.Context) (net.Conn, error)
	// Bypass lists the addresses that must stay outside the tunnel (the
	// visor's own peers and services).
	Bypass func() ([]netip.Addr, error)
	// Status receives the client's state in words.
	Status func(string)
	// Report, if set, receives the tunnel's state at every probe and
	// change (the visor reads it from a file for `cli vpn status`).
	Report func(Report)
	// Server names the server in reports.
	Server string
	// NoOffload keeps packets plain (no virtio-net headers).
	NoOffload bool
	// ResolvConf is the resolver file DNS replaces when systemd-resolved is
	// not running (zero: /etc/resolv.conf).
	ResolvConf string
	Log        *zap.Logger
}

// Intervals of the client.
const (
	probeEvery   = 2 * time.Second
	probeTimeout = 8 * time.Second // no answer this long: the route is gone
	minBackoff   = time.Second
	maxBackoff   = 20 * time.Second
	tunName      = "swvpn0"
)

// Report is the tunnel's state.
type Report struct {
	Server     string    `json:"server,omitempty"`
	Connected  bool      `json:"connected"`
	Address    string    `json:"address,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	Up         uint64    `json:"up"`
	Down       uint64    `json:"down"`
	UpRate     float64   `json:"up_rate"`
	DownRate   float64   `json:"down_rate"`
	LatencyMS  float64   `json:"latency_ms"`
	Killswitch bool      `json:"killswitch"`
	LastError  string    `json:"last_error,omitempty"`
	Updated    time.Time `json:"updated"`
}

// Client is vpn-client.
type Client struct {
	cfg     ClientConfig
	log     *zap.Logger
	journal *hostcfg.Journal

	dev      tun
	offload  bool                // dev carries virtio-net headers
	addr     netip.Prefix        // the tunnel address now set
	bypassed map[netip.Addr]bool // host routes added
	n        packets.Counters
}

// NewClient checks cfg and undoes what a crashed client left on the host.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Status == nil {
		cfg.Status = func(string) {}
	}
	if cfg.Report == nil {
		cfg.Report = func(Report) {}
	}
	if !hostDNSAndKillswitch && (len(cfg.DNS) > 0 || cfg.Killswitch) {
		return nil, fmt.Errorf("--dns and --killswitch are not built for %s yet (Linux only): set the resolver by hand, and leave the kill switch off", runtime.GOOS)
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = "/etc/resolv.conf"
	}
	j, err := Restore(cfg.StatePath, cfg.Log)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, log: cfg.Log, journal: j, bypassed: map[netip.Addr]bool{}}, nil
}

// Restore undoes the host changes recorded in statePath (a killed client's
// or server's) and returns the now empty journal.
func Restore(statePath string, log *zap.Logger) (*hostcfg.Journal, error) {
	j, err := hostcfg.Open(statePath, nil)
	if err != nil {
		return nil, err
	}
	if j.Pending() {
		if log != nil {
			log.Warn("restoring the host changes a previous run left", zap.String("state", statePath))
		}
		if err := j.Restore(); err != nil {
			return nil, fmt.Errorf("restoring what a previous run left: %w", err)
		}
	}
	return j, nil
}

// Run connects and keeps the tunnel up until ctx ends, reconnecting with
// backoff; then it restores the host exactly.
func (c *Client) Run(ctx context.Context) (err error) {
	defer func() {
		if c.dev != nil {
			c.dev.Close()
		}
		if rerr := c.journal.Restore(); rerr != nil {
			c.log.Error("restoring the host", zap.Error(rerr))
			if err == nil {
				err = rerr
			}
		}
		c.cfg.Status("stopped")
	}()
	backoff := minBackoff
	for ctx.Err() == nil {
		began := time.Now()
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) > time.Minute {
			backoff = minBackoff
		}
		c.log.Warn("tunnel down; reconnecting", zap.Error(err), zap.Duration("retry_in", backoff))
		c.cfg.Status(fmt.Sprintf("reconnecting in %s: %v", backoff, err))
		c.cfg.Report(Report{Server: c.cfg.Server, Killswitch: c.cfg.Killswitch, Up: c.n.Up.Load(), Down: c.n.Down.Load(), LastError: err.Error(), Updated: time.Now().UTC()})
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
	return nil
}

// session is one connection: handshake, host set-up (once), packets.
func (c *Client) session(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, err := c.cfg.Dial(dctx)
	cancel()
	if err != nil {
		return fmt.Errorf("dialling the server: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	// The tunnel's own subnet is not in use by the host: the server may
	// give it again.
	inUse := slices.DeleteFunc(localPrefixes(), func(p netip.Prefix) bool { return c.addr.IsValid() && p == c.addr.Masked() })
	offer := canOffload && !c.cfg.NoOffload && (c.dev == nil || c.offload)
	if err := writeJSON(conn, Hello{Version: ProtocolVersion, Passcode: c.cfg.Passcode, InUse: inUse, Previous: c.addr, Offload: offer}); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	var w Welcome
	if err := readJSON(conn, &w); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	if w.Status != StatusOK {
		return fmt.Errorf("the server refused: %s: %s", w.Status, w.Message)
	}
	conn.SetDeadline(time.Time{})
	if err := c.setUp(w); err != nil {
		return err
	}
	var mu sync.Mutex
	last, rtt := time.Now(), time.Duration(0)
	pctx, pcancel := context.WithCancelCause(ctx)
	defer pcancel(nil)
	since := time.Now().UTC()
	probes := func(p *path) { // liveness and latency, and the status line
		t := time.NewTicker(probeEvery)
		defer t.Stop()
		prevAt, prevUp, prevDown := time.Now(), c.n.Up.Load(), c.n.Down.Load()
		for {
			var b [8]byte
			binary.BigEndian.PutUint64(b[:], uint64(time.Now().UnixNano()))
			p.refresh()
			p.send(KindProbe, b[:])
			mu.Lock()
			l, d := last, rtt
			mu.Unlock()
			if quiet := time.Since(l); quiet > probeTimeout {
				c.log.Warn("no answer over the tunnel", zap.Duration("for", quiet))
				pcancel(fmt.Errorf("no answer over the tunnel for %s", quiet.Round(time.Second)))
				return
			}
			up, down, now := c.n.Up.Load(), c.n.Down.Load(), time.Now()
			secs := now.Sub(prevAt).Seconds()
			rep := Report{Server: c.cfg.Server, Connected: true, Address: w.Client.Addr().String(), Since: since, Up: up, Down: down,
				LatencyMS: float64(d.Microseconds()) / 1000, Killswitch: c.cfg.Killswitch, Updated: now.UTC()}
			if secs > 0 {
				rep.UpRate, rep.DownRate = float64(up-prevUp)/secs, float64(down-prevDown)/secs
			}
			prevAt, prevUp, prevDown = now, up, down
			c.cfg.Report(rep)
			c.cfg.Status(fmt.Sprintf("connected as %s, rtt %.1f ms, up %d B, down %d B", w.Client.Addr(), rep.LatencyMS, up, down))
			select {
			case <-pctx.Done():
				return
			case <-t.C:
			}
		}
	}
	c.log.Info("tunnel up", zap.String("addr", w.Client.String()), zap.String("server", w.Server.String()))
	err = carry(pctx, conn, c.dev, &c.n, func(p *path) { go probes(p) }, func(_ *path, kind byte, b []byte) error {
		if kind == KindAnswer && len(b) == 8 {
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(b)))
			mu.Lock()
			last, rtt = time.Now(), time.Since(sent)
			mu.Unlock()
		}
		return nil
	})
	if cause := context.Cause(pctx); cause != nil && ctx.Err() == nil {
		return cause
	}
	return err
}

// setUp makes the TUN and routes on the first session, and readdresses the
// TUN if a later one gets another address.
func (c *Client) setUp(w Welcome) error {
	j := c.journal
	first := c.dev == nil
	if first {
		dev, err := openTUN(tunName, w.Offload)
		if err != nil {
			return fmt.Errorf("making the tunnel device: %w", err)
		}
		c.dev, c.offload = dev, w.Offload
	} else if w.Offload != c.offload {
		return fmt.Errorf("the server answered offload %v, the tunnel device has %v", w.Offload, c.offload)
	}
	if c.addr != w.Client {
		// The new address first: a device left with no address loses its
		// routes, the full tunnel with them.
		if err := configureTUN(c.dev.Name(), w.Client, w.Server); err != nil {
			return err
		}
		if c.addr.IsValid() {
			hostcfg.Run(tunAddrDelCmd(c.dev.Name(), c.addr))
		}
		c.addr = w.Client
	}
	// Bypass routes: every address the visor talks to keeps its way out.
	bypass, err := c.cfg.Bypass()
	if err != nil {
		return fmt.Errorf("asking the visor what to keep outside the tunnel: %w", err)
	}
	for _, a := range bypass {
		if !a.Is4() || c.bypassed[a] {
			continue
		}
		rt, err := routeGet(a)
		if err != nil || rt.Dev == c.dev.Name() {
			continue
		}
		add, del := hostRouteCmds(a, rt)
		if err := j.Do("bypass route "+a.String(), add, del); err != nil {
			c.log.Debug("bypass route", zap.Error(err))
			continue
		}
		c.bypassed[a] = true
	}
	if !first {
		return nil
	}
	// The full tunnel. These routes need no record: they go with the
	// device, which goes with the process however it ends.
	dev := c.dev.Name()
	for _, p := range []string{"0.0.0.0/1", "128.0.0.0/1"} {
		if err := hostcfg.Run(tunnelRouteCmd(dev, netip.MustParsePrefix(p), w.Server)); err != nil {
			return err
		}
	}
	// IPv6 is not carried: while connected none leaves (no IPv6 leak).
	for _, p := range []string{"::/1", "8000::/1"} {
		add, del := blockIPv6Cmds(dev, netip.MustParsePrefix(p))
		do := func() error { return j.Do("block IPv6 "+p, add, del) }
		if del == nil { // it goes with the device
			do = func() error { return hostcfg.Run(add) }
		}
		if err := do(); err != nil {
			c.log.Debug("no IPv6 here", zap.Error(err))
		}
	}
	if len(c.cfg.DNS) > 0 {
		if err := c.setDNS(); err != nil {
			return err
		}
	}
	if c.cfg.Killswitch {
		if err := c.killswitch(bypass); err != nil {
			return err
		}
	}
	return nil
}

// setDNS points the host's resolver at the tunnel's DNS: on the tunnel's
// link through systemd-resolved when it runs, else by replacing the
// resolver file (the old one kept in the journal).
func (c *Client) setDNS() error {
	var ns []string
	for _, a := range c.cfg.DNS {
		ns = append(ns, a.String())
	}
	if _, err := os.Stat("/run/systemd/resolve/io.systemd.Resolve"); err == nil {
		if _, err := exec.LookPath("resolvectl"); err == nil {
			dev := c.dev.Name()
			if err := c.journal.Do("DNS on "+dev, append([]string{"resolvectl", "dns", dev}, ns...), []string{"resolvectl", "revert", dev}); err != nil {
				return err
			}
			return c.journal.Do("all names through "+dev, []string{"resolvectl", "domain", dev, "~."}, []string{"true"})
		}
	}
	var b strings.Builder
	b.WriteString("# written by skywire vpn-client while connected; the original comes back when it stops\n")
	for _, s := range ns {
		b.WriteString("nameserver " + s + "\n")
	}
	return c.journal.WriteFile("DNS", c.cfg.ResolvConf, []byte(b.String()), 0o644)
}

// killswitchChain holds the kill switch's rules.
const killswitchChain = "SKYWIRE-VPN-KS"

// killswitch lets out only loopback, the tunnel and the bypass addresses.
func (c *Client) killswitch(bypass []netip.Addr) error {
	j := c.journal
	ch := killswitchChain
	if err := j.Do("kill switch chain", []string{"iptables", "-w", "-N", ch}, []string{"iptables", "-w", "-X", ch}); err != nil {
		return err
	}
	rules := [][]string{{"-o", "lo", "-j", "ACCEPT"}, {"-o", c.dev.Name(), "-j", "ACCEPT"}}
	for _, a := range bypass {
		if a.Is4() {
			rules = append(rules, []string{"-d", a.String() + "/32", "-j", "ACCEPT"})
		}
	}
	rules = append(rules, []string{"-j", "DROP"})
	for _, r := range rules {
		if err := iptables(j, "iptables", "filter", append([]string{"-A", ch}, r...)...); err != nil {
			return err
		}
	}
	if err := iptables(j, "iptables", "filter", "-I", "OUTPUT", "-j", ch); err != nil {
		return err
	}
	if _, err := exec.LookPath("ip6tables"); err == nil {
		if err := iptables(j, "ip6tables", "filter", "-I", "OUTPUT", "!", "-o", "lo", "-j", "DROP"); err != nil {
			c.log.Debug("no IPv6 firewall", zap.Error(err))
		}
	}
	return nil
}
