package visor

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/internal/configfile"
)

// ConfigVersion is the config schema this build reads and writes.
const ConfigVersion = "v1"

// Default ports of the discovery services (`skywire svc …`), used by
// gen-config -t and --svc.
const (
	PortDmsgDiscovery      = 9090
	PortTransportDiscovery = 9091
	PortRouteFinder        = 9092
	PortAddressResolver    = 9093
	PortServiceDiscovery   = 9098
)

// TransportTypes are the transport types a persistent transport may name.
var TransportTypes = []string{"stcp", "stcpr", "sudph", "dmsg"}

// Config is a visor's config file (skywire-config.json). Relative paths in it
// are relative to the file's directory. The zero value of every field is
// described on it; DefaultConfig gives the values gen-config writes.
type Config struct {
	// Version is the schema version, ConfigVersion. Required.
	Version string `json:"version"`
	// SK is the visor's secret key. Required.
	SK cipher.SecKey `json:"sk"`
	// PK is the visor's public key; it must be SK's. Required.
	PK cipher.PubKey `json:"pk"`

	Dmsg      DmsgConfig      `json:"dmsg"`
	STCP      STCPConfig      `json:"stcp"`
	Transport TransportConfig `json:"transport"`
	Routing   RoutingConfig   `json:"routing"`

	// ServiceDiscovery is the service discovery URL; "" disables publishing
	// and looking up services.
	ServiceDiscovery string `json:"service_discovery"`

	// AppsPath is the directory of custom app binaries. "" means "./apps".
	AppsPath string `json:"apps_path"`
	// AppServerAddr is the TCP address apps reach their visor's gateway on
	// (apps are told it in APP_SERVER_ADDR; port 0 picks a free one).
	// Required.
	AppServerAddr string `json:"app_server_addr"`
	// Apps are the apps the visor manages. Nil means none.
	Apps []AppConfig `json:"apps"`

	// Hypervisors may control this visor. Nil means none.
	Hypervisors []HypervisorConfig `json:"hypervisors"`
	// Hypervisor, when set, makes this visor a hypervisor too (gen-config
	// --hypervisor, -i): the visor process serves the web UI, managing
	// itself and every visor that lists its key in their hypervisors.
	Hypervisor *LocalHypervisorConfig `json:"hypervisor,omitempty"`

	// Dmsgpty is the remote shell this visor hosts on dmsg port 22. Its
	// zero value serves nobody.
	Dmsgpty DmsgptyConfig `json:"dmsgpty"`

	// CLIAddr is where the admin API listens: a unix socket path (mode 0600)
	// or a TCP host:port (a bearer token is then required, see docs/config.md).
	// Required.
	CLIAddr string `json:"cli_addr"`
	// LocalPath is the visor's state directory. "" means "./local".
	LocalPath string `json:"local_path"`
	// LogLevel is debug, info, warn or error. "" means info.
	LogLevel string `json:"log_level"`

	// MetricsAddr, if set, is a TCP address ("127.0.0.1:9700") where the
	// visor serves /metrics, /healthz and /readyz to a Prometheus scraper,
	// with no token (they are on the admin API too).
	MetricsAddr string `json:"metrics_addr,omitempty"`
}

// DmsgptyConfig is the remote shell (package dmsgpty): who may open a
// terminal or run a command on this visor, and with what.
type DmsgptyConfig struct {
	// Whitelist are the keys that may open a shell here over dmsg. Nil
	// means nobody (but the hypervisors, if Hypervisors).
	Whitelist []cipher.PubKey `json:"whitelist"`
	// Hypervisors lets the hypervisors in `hypervisors` open one too (the
	// hypervisor's Terminal). False: they may not.
	Hypervisors bool `json:"hypervisors"`
	// Shell is the program a terminal runs, as a login shell. "" means the
	// user's login shell ($SHELL, else /etc/passwd's, else /bin/sh).
	Shell string `json:"shell,omitempty"`
	// Dir is the sessions' working directory. "" means the home directory.
	Dir string `json:"dir,omitempty"`
	// MaxSessions bounds the sessions one key holds at once. 0 means 4.
	MaxSessions int `json:"max_sessions,omitempty"`
	// IdleTimeout ends a session with no input and no output for that long
	// (a Go duration: "30m"). "" means "1h"; "0" never.
	IdleTimeout string `json:"idle_timeout,omitempty"`
}

// IdleTimeoutDuration is IdleTimeout parsed: 0 for the default, negative
// for never.
func (c DmsgptyConfig) IdleTimeoutDuration() time.Duration {
	if c.IdleTimeout == "" {
		return 0
	}
	d, err := time.ParseDuration(c.IdleTimeout)
	if err != nil || d == 0 {
		return -1
	}
	return d
}

// DmsgConfig is how the visor joins the dmsg relay network.
type DmsgConfig struct {
	// Discovery is the dmsg discovery URL; "" disables dmsg.
	Discovery string `json:"discovery"`
	// SessionsCount is how many dmsg servers to keep sessions with (≥ 1).
	SessionsCount int `json:"sessions_count"`
	// TrustedServers, if not empty, are the only dmsg servers the visor
	// uses, whatever the discovery lists (nil: the discovery's, which lists
	// only servers its operator trusts).
	TrustedServers []cipher.PubKey `json:"trusted_servers,omitempty"`
}

// STCPConfig is the static TCP transport.
type STCPConfig struct {
	// PKTable maps remote public keys to their "host:port". Nil means none.
	PKTable map[cipher.PubKey]string `json:"pk_table"`
	// LocalAddress is the "host:port" to accept stcp on; "" disables it.
	LocalAddress string `json:"local_address"`
}

// TransportConfig configures transports.
type TransportConfig struct {
	// Discovery is the transport discovery URL; "" disables registration.
	Discovery string `json:"discovery"`
	// AddressResolver is the address resolver URL; "" disables stcpr and sudph.
	AddressResolver string `json:"address_resolver"`
	// STCPRAddr is the TCP "host:port" to accept stcpr on (bound at the
	// resolver); "" means any port (":0").
	STCPRAddr string `json:"stcpr_addr"`
	// SUDPHAddr is the UDP "host:port" of the sudph socket; "" means any
	// port (":0").
	SUDPHAddr string `json:"sudph_addr"`
	// Persistent transports are dialled at start and redialled when they drop.
	Persistent []PersistentTransport `json:"persistent"`
	// Labels name peers (up to 64 characters each), shown with their
	// transports (`add-tp --label`).
	Labels map[cipher.PubKey]string `json:"labels,omitempty"`
	// Public lists this visor in the service discovery as a public visor,
	// one a new visor may keep a transport to, once it has checked that the
	// address the address resolver sees is one of its own (a visor behind
	// NAT is never listed).
	Public bool `json:"public,omitempty"`
	// MaxPublicPeers bounds the transports other visors dial to a public
	// visor (default DefaultMaxPublicPeers); the next is refused as busy.
	MaxPublicPeers int `json:"max_public_peers,omitempty"`
	// PublicAutoconnect keeps transports to up to AutoconnectCount public
	// visors from the service discovery, replacing those that go.
	PublicAutoconnect bool `json:"public_autoconnect,omitempty"`
	// AutoconnectCount is how many (default DefaultAutoconnectCount).
	AutoconnectCount int `json:"autoconnect_count,omitempty"`
}

// Public visors and autoconnect defaults.
const (
	DefaultMaxPublicPeers   = 64
	DefaultAutoconnectCount = 3
)

// PersistentTransport names a transport to keep up.
type PersistentTransport struct {
	PK   cipher.PubKey `json:"pk"`
	Type string        `json:"type"`
}

// RoutingConfig configures routes.
type RoutingConfig struct {
	// RouteFinder is the route finder URL; "" allows only direct routes.
	RouteFinder string `json:"route_finder"`
	// MinHops is the minimum number of hops of a route (0 = any).
	MinHops int `json:"min_hops"`
}

// AppConfig is one managed app.
type AppConfig struct {
	// App is the app's name: a built-in (skychat, …) or a binary in apps_path.
	App string `json:"app"`
	// AutoStart starts the app with the visor.
	AutoStart bool `json:"auto_start"`
	// Port is the app's port on the network (1–65535, unique per visor).
	Port uint16 `json:"port"`
	// Args are passed to the app.
	Args []string `json:"args"`
}

// HypervisorConfig is a hypervisor allowed to control this visor.
type HypervisorConfig struct {
	PublicKey cipher.PubKey `json:"public_key"`
	// Address is an optional direct "host:port"; "" means reach it over dmsg.
	Address string `json:"address"`
}

// LocalHypervisorConfig is the web UI a visor serves as its own
// hypervisor. Relative paths are relative to the config file.
type LocalHypervisorConfig struct {
	// HTTPAddr is where the UI and REST API listen ("127.0.0.1:8000").
	HTTPAddr string `json:"http_addr"`
	// DBPath is the user database. "" means "./hypervisor.db".
	DBPath string `json:"db_path"`
	// EnableTLS serves HTTPS with TLSCertFile and TLSKeyFile.
	EnableTLS   bool   `json:"enable_tls"`
	TLSCertFile string `json:"tls_cert_file"`
	TLSKeyFile  string `json:"tls_key_file"`
}

// DefaultLocalHypervisor is the block gen-config --hypervisor writes.
func DefaultLocalHypervisor() *LocalHypervisorConfig {
	return &LocalHypervisorConfig{HTTPAddr: "127.0.0.1:8000", DBPath: "./hypervisor.db", TLSCertFile: "./ssl/cert.pem", TLSKeyFile: "./ssl/key.pem"}
}

// DefaultApps are the apps gen-config writes, as in Skywire: every
// built-in app (appproto.Builtins) with its port, auto start and address.
func DefaultApps() []AppConfig {
	out := make([]AppConfig, 0, len(appproto.Builtins))
	for _, b := range appproto.Builtins {
		args := []string{}
		if b.Addr != "" {
			args = []string{"--addr", b.Addr}
		}
		out = append(out, AppConfig{App: b.Name, AutoStart: b.AutoStart, Port: b.Port, Args: args})
	}
	return out
}

// DefaultConfig is the config gen-config writes for the key sk: no services
// (see UseServices), stcp on :7777, the default apps.
// The paths of a visor run as a system service (the systemd unit, the
// .deb): its config, its state, its admin socket.
const (
	SystemConfigPath = "/etc/skywire/skywire.json"
	SystemLocalPath  = "/var/lib/skywire"
	SystemCLIAddr    = "/run/skywire/cli.sock"
)

// CheckLabel refuses a peer label that is empty, longer than 64
// characters, or holds a control character.
func CheckLabel(l string) error {
	if l == "" || utf8.RuneCountInString(l) > 64 {
		return fmt.Errorf("want 1 to 64 characters")
	}
	for _, r := range l {
		if unicode.IsControl(r) {
			return fmt.Errorf("a control character")
		}
	}
	return nil
}

func DefaultConfig(sk cipher.SecKey) Config {
	return Config{
		Version:       ConfigVersion,
		SK:            sk,
		PK:            sk.PubKey(),
		Dmsg:          DmsgConfig{SessionsCount: 1},
		STCP:          STCPConfig{PKTable: map[cipher.PubKey]string{}, LocalAddress: ":7777"},
		Transport:     TransportConfig{Persistent: []PersistentTransport{}},
		AppsPath:      "./apps",
		AppServerAddr: "127.0.0.1:0",
		Apps:          DefaultApps(),
		Hypervisors:   []HypervisorConfig{},
		Dmsgpty:       DmsgptyConfig{Whitelist: []cipher.PubKey{}, Hypervisors: true},
		CLIAddr:       admin.DefaultAddr(),
		LocalPath:     "./local",
		LogLevel:      "info",
	}
}

// UseServices points every service URL at host with the default ports (what
// gen-config -t does with host 127.0.0.1).
func (c *Config) UseServices(host string) {
	u := func(port int) string { return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) }
	c.Dmsg.Discovery = u(PortDmsgDiscovery)
	c.Transport.Discovery = u(PortTransportDiscovery)
	c.Transport.AddressResolver = u(PortAddressResolver)
	c.Routing.RouteFinder = u(PortRouteFinder)
	c.ServiceDiscovery = u(PortServiceDiscovery)
}

// LoadConfig reads and validates the config at path.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := configfile.Load(path, &c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s is not valid:\n%w", path, err)
	}
	return &c, nil
}

// Save writes c to path atomically with mode 0600.
func (c *Config) Save(path string) error { return configfile.Save(path, c) }

var appName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Validate reports every problem in c, one per line, each naming the field
// and its value.
func (c *Config) Validate() error {
	var p configfile.Problems
	switch c.Version {
	case ConfigVersion:
	case "":
		p.Add("version", nil, "missing: this build reads config version %q", ConfigVersion)
	default:
		p.Add("version", c.Version, "this build reads config version %q only", ConfigVersion)
	}
	switch {
	case c.SK.IsZero():
		p.Add("sk", nil, "missing: generate a config with `skywire visor gen-config`")
	case c.PK.IsNull():
		p.Add("pk", nil, "missing: it must be %s, the key of sk", c.SK.PubKey())
	case c.SK.PubKey() != c.PK:
		p.Add("pk", c.PK.Hex(), "does not belong to sk (sk's public key is %s)", c.SK.PubKey())
	}

	p.URL("dmsg.discovery", c.Dmsg.Discovery)
	if c.Transport.MaxPublicPeers < 0 || c.Transport.MaxPublicPeers > 1024 {
		p.Add("transport.max_public_peers", c.Transport.MaxPublicPeers, "want 0 (the default, %d) to 1024", DefaultMaxPublicPeers)
	}
	if c.Transport.AutoconnectCount < 0 || c.Transport.AutoconnectCount > 32 {
		p.Add("transport.autoconnect_count", c.Transport.AutoconnectCount, "want 0 (the default, %d) to 32", DefaultAutoconnectCount)
	}
	if (c.Transport.Public || c.Transport.PublicAutoconnect) && c.ServiceDiscovery == "" {
		p.Add("service_discovery", nil, "transport.public and transport.public_autoconnect need a service discovery")
	}
	if c.Dmsg.SessionsCount < 1 || c.Dmsg.SessionsCount > 64 {
		p.Add("dmsg.sessions_count", c.Dmsg.SessionsCount, "want 1 to 64")
	}

	for pk, addr := range c.STCP.PKTable {
		path := fmt.Sprintf("stcp.pk_table[%q]", pk.Hex())
		if pk.IsNull() {
			p.Add(path, nil, "the key is empty")
			continue
		}
		if pk == c.PK {
			p.Add(path, nil, "this is the visor's own key")
		}
		p.HostPort(path, addr, false)
	}
	if c.STCP.LocalAddress != "" {
		p.HostPort("stcp.local_address", c.STCP.LocalAddress, true)
	}

	p.URL("transport.discovery", c.Transport.Discovery)
	p.URL("transport.address_resolver", c.Transport.AddressResolver)
	if c.Transport.STCPRAddr != "" {
		p.HostPort("transport.stcpr_addr", c.Transport.STCPRAddr, true)
	}
	for pk, l := range c.Transport.Labels {
		if err := CheckLabel(l); err != nil {
			p.Add("transport.labels."+pk.Hex(), l, "%v", err)
		}
	}
	if c.MetricsAddr != "" {
		p.HostPort("metrics_addr", c.MetricsAddr, true)
	}
	if c.Transport.SUDPHAddr != "" {
		p.HostPort("transport.sudph_addr", c.Transport.SUDPHAddr, true)
	}
	seen := map[PersistentTransport]bool{}
	for i, t := range c.Transport.Persistent {
		path := fmt.Sprintf("transport.persistent[%d]", i)
		switch {
		case t.PK.IsNull():
			p.Add(path+".pk", nil, "missing")
		case t.PK == c.PK:
			p.Add(path+".pk", t.PK.Hex(), "a visor cannot have a transport to itself")
		}
		if !slices.Contains(TransportTypes, t.Type) {
			p.Add(path+".type", t.Type, "want one of %v", TransportTypes)
		}
		if seen[t] {
			p.Add(path, nil, "repeats an earlier entry")
		}
		seen[t] = true
	}

	p.URL("routing.route_finder", c.Routing.RouteFinder)
	if c.Routing.MinHops < 0 || c.Routing.MinHops > 16 {
		p.Add("routing.min_hops", c.Routing.MinHops, "want 0 to 16")
	}
	p.URL("service_discovery", c.ServiceDiscovery)

	if c.AppServerAddr == "" {
		p.Add("app_server_addr", nil, `missing: e.g. "127.0.0.1:5505"`)
	} else {
		p.HostPort("app_server_addr", c.AppServerAddr, true)
	}
	names := map[string]int{}
	ports := map[uint16]int{}
	for i, a := range c.Apps {
		path := fmt.Sprintf("apps[%d]", i)
		if !appName.MatchString(a.App) {
			p.Add(path+".app", a.App, "want a name of letters, digits, '.', '_' or '-'")
		}
		if j, dup := names[a.App]; dup {
			p.Add(path+".app", a.App, "already used by apps[%d]", j)
		}
		names[a.App] = i
		if a.Port == 0 {
			p.Add(path+".port", a.Port, "port 0 is the router's; want 1 to 65535")
		} else if j, dup := ports[a.Port]; dup {
			p.Add(path+".port", a.Port, "already used by apps[%d]", j)
		}
		ports[a.Port] = i
	}

	for i, h := range c.Hypervisors {
		path := fmt.Sprintf("hypervisors[%d]", i)
		if h.PublicKey.IsNull() {
			p.Add(path+".public_key", nil, "missing")
		}
		if h.Address != "" {
			p.HostPort(path+".address", h.Address, false)
		}
	}

	for i, pk := range c.Dmsgpty.Whitelist {
		if pk.IsNull() {
			p.Add(fmt.Sprintf("dmsgpty.whitelist[%d]", i), nil, "the key is empty")
		}
	}
	if c.Dmsgpty.MaxSessions < 0 || c.Dmsgpty.MaxSessions > 64 {
		p.Add("dmsgpty.max_sessions", c.Dmsgpty.MaxSessions, "want 0 (the default, 4) to 64")
	}
	if c.Dmsgpty.IdleTimeout != "" {
		if d, err := time.ParseDuration(c.Dmsgpty.IdleTimeout); err != nil || d < 0 || d > 0 && d < time.Second {
			p.Add("dmsgpty.idle_timeout", c.Dmsgpty.IdleTimeout, `want a duration of 1s or more such as "30m" or "2h", or "0" for never`)
		}
	}
	if c.Dmsgpty.Shell != "" && !filepath.IsAbs(c.Dmsgpty.Shell) {
		p.Add("dmsgpty.shell", c.Dmsgpty.Shell, "want an absolute path, such as /bin/bash")
	}

	if h := c.Hypervisor; h != nil {
		if h.HTTPAddr == "" {
			p.Add("hypervisor.http_addr", nil, "missing: e.g. %q", "127.0.0.1:8000")
		} else {
			p.HostPort("hypervisor.http_addr", h.HTTPAddr, true)
		}
		if h.EnableTLS && (h.TLSCertFile == "" || h.TLSKeyFile == "") {
			p.Add("hypervisor.enable_tls", true, "needs tls_cert_file and tls_key_file")
		}
	}

	if c.CLIAddr == "" {
		p.Add("cli_addr", nil, "missing: e.g. %q", admin.DefaultAddr())
	} else if _, _, err := admin.ParseAddr(c.CLIAddr); err != nil {
		p.Add("cli_addr", c.CLIAddr, "want a unix socket path or host:port")
	}
	if c.LogLevel != "" {
		p.LogLevel("log_level", c.LogLevel)
	}
	return p.Err()
}

// Paths resolved against the config file's directory.

// ResolvePath makes a relative path from the config relative to configDir.
func ResolvePath(configDir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(configDir, p)
}
