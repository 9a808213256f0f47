// Package hypervisor is the web UI and REST API that manages many visors. It
// reaches each visor's admin API (package admin) over dmsg.
//
// Visors link to it (link.go): over dmsg, or directly (TCP + Noise XK)
// on link_addr. It keeps a cache of every visor's state (state.go), serves
// the REST API (api.go) with server-sent events (events.go) and the web UI
// (ui.go, ui/), and keeps its password, sessions, labels and audit log in
// a bbolt file (store.go, auth.go).
package hypervisor

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/configfile"
)

// ConfigVersion is the hypervisor config schema this build reads and writes.
const ConfigVersion = "v1"

// Defaults.
const (
	DefaultHTTPAddr = "127.0.0.1:8000"
	DefaultDmsgPort = 46
	// portDmsgDiscovery is the dmsg discovery's default port (as in visor).
	portDmsgDiscovery = 9090
)

// Config is the hypervisor's config file (hypervisor-config.json). Relative
// paths are relative to the file's directory.
type Config struct {
	// Version is the schema version, ConfigVersion. Required.
	Version string `json:"version"`
	// SK and PK are the hypervisor's identity on dmsg; visors list PK in
	// their "hypervisors". Required.
	SK cipher.SecKey `json:"sk"`
	PK cipher.PubKey `json:"pk"`
	// Dmsg is how the hypervisor reaches visors.
	Dmsg DmsgConfig `json:"dmsg"`
	// DmsgPort is the dmsg port visors connect to (46).
	DmsgPort uint16 `json:"dmsg_port"`
	// LinkAddr is a TCP "host:port" where visors that list this
	// hypervisor with an address link directly (TCP + Noise XK: a LAN
	// without a dmsg server). "" takes links over dmsg only.
	LinkAddr string `json:"link_addr"`
	// HTTPAddr is where the web UI and REST API listen. Required.
	HTTPAddr string `json:"http_addr"`
	// DBPath is the user database file. "" means "./hypervisor.db".
	DBPath string `json:"db_path"`
	// Store, when set, keeps the users, sessions, labels and audit log
	// there instead of in DBPath: a svc/store spec ("redis://HOST:PORT/DB",
	// shared by several hypervisors; "bbolt:PATH"; "memory").
	Store string `json:"store,omitempty"`
	// EnableTLS serves HTTPS with TLSCertFile and TLSKeyFile.
	EnableTLS   bool   `json:"enable_tls"`
	TLSCertFile string `json:"tls_cert_file"`
	TLSKeyFile  string `json:"tls_key_file"`
	// LogLevel is debug, info, warn or error. "" means info.
	LogLevel string `json:"log_level"`
}

// DmsgConfig is how the hypervisor joins the dmsg network.
type DmsgConfig struct {
	// Discovery is the dmsg discovery URL. "" leaves the hypervisor able to
	// manage only visors that dial it directly.
	Discovery string `json:"discovery"`
	// SessionsCount is how many dmsg servers to keep sessions with (≥ 1).
	SessionsCount int `json:"sessions_count"`
}

// DefaultConfig is the config gen-config writes for sk.
func DefaultConfig(sk cipher.SecKey) Config {
	return Config{
		Version:     ConfigVersion,
		SK:          sk,
		PK:          sk.PubKey(),
		Dmsg:        DmsgConfig{SessionsCount: 1},
		DmsgPort:    DefaultDmsgPort,
		HTTPAddr:    DefaultHTTPAddr,
		DBPath:      "./hypervisor.db",
		TLSCertFile: "./ssl/cert.pem",
		TLSKeyFile:  "./ssl/key.pem",
		LogLevel:    "info",
	}
}

// UseServices points the dmsg discovery at host's default port.
func (c *Config) UseServices(host string) {
	c.Dmsg.Discovery = "http://" + net.JoinHostPort(host, strconv.Itoa(portDmsgDiscovery))
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

// Validate reports every problem in c, each naming the field and value.
func (c *Config) Validate() error {
	var p configfile.Problems
	if c.Version != ConfigVersion {
		p.Add("version", c.Version, "this build reads hypervisor config version %q", ConfigVersion)
	}
	switch {
	case c.SK.IsZero():
		p.Add("sk", nil, "missing: generate a config with `skywire hypervisor gen-config`")
	case c.SK.PubKey() != c.PK:
		p.Add("pk", c.PK.Hex(), "does not belong to sk (sk's public key is %s)", c.SK.PubKey())
	}
	p.URL("dmsg.discovery", c.Dmsg.Discovery)
	if c.Dmsg.SessionsCount < 1 || c.Dmsg.SessionsCount > 64 {
		p.Add("dmsg.sessions_count", c.Dmsg.SessionsCount, "want 1 to 64")
	}
	if c.DmsgPort == 0 {
		p.Add("dmsg_port", c.DmsgPort, "want 1 to 65535 (default %d)", DefaultDmsgPort)
	}
	if c.HTTPAddr == "" {
		p.Add("http_addr", nil, "missing: e.g. %q", DefaultHTTPAddr)
	} else {
		p.HostPort("http_addr", c.HTTPAddr, true)
	}
	if c.LinkAddr != "" {
		p.HostPort("link_addr", c.LinkAddr, true)
	}
	if c.EnableTLS && (c.TLSCertFile == "" || c.TLSKeyFile == "") {
		p.Add("enable_tls", true, "needs tls_cert_file and tls_key_file")
	}
	if c.LogLevel != "" {
		p.LogLevel("log_level", c.LogLevel)
	}
	return p.Err()
}

// storeSpec is the store the config names, with a relative bbolt path
// resolved against dir.
func (c *Config) storeSpec(dir string) string {
	if c.Store == "" {
		return "bbolt:" + resolvePath(dir, defaultString(c.DBPath, "./hypervisor.db"))
	}
	if p, ok := strings.CutPrefix(c.Store, "bbolt:"); ok {
		return "bbolt:" + resolvePath(dir, p)
	}
	return c.Store
}
