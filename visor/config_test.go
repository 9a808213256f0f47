package visor

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/internal/configfile"
)

func validConfig(t *testing.T) Config {
	t.Helper()
	_, sk := cipher.GenerateKeyPair()
	c := DefaultConfig(sk)
	c.STCP.LocalAddress = "127.0.0.1:0" // tests never depend on a fixed port
	return c
}

// quietConfig is validConfig without apps: in-process visors here would
// run the test binary as their built-in apps.
func quietConfig(t *testing.T) Config {
	c := validConfig(t)
	c.Apps = nil
	return c
}

func TestDefaultConfigValid(t *testing.T) {
	c := validConfig(t)
	if err := c.Validate(); err != nil {
		t.Fatalf("default config is invalid:\n%v", err)
	}
	c.UseServices("127.0.0.1")
	if err := c.Validate(); err != nil {
		t.Fatalf("config with services is invalid:\n%v", err)
	}
	want := map[string]string{
		c.Dmsg.Discovery:            "http://127.0.0.1:9090",
		c.Transport.Discovery:       "http://127.0.0.1:9091",
		c.Routing.RouteFinder:       "http://127.0.0.1:9092",
		c.Transport.AddressResolver: "http://127.0.0.1:9093",
		c.ServiceDiscovery:          "http://127.0.0.1:9098",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("service URL %q, want %q", got, w)
		}
	}
}

func TestDefaultApps(t *testing.T) {
	type app struct {
		port uint16
		auto bool
		args string
	}
	want := map[string]app{
		"skychat":         {1, true, "--addr 127.0.0.1:8001"},
		"skysocks":        {3, true, ""},
		"skysocks-client": {13, false, "--addr 127.0.0.1:1080"},
		"vpn-server":      {44, false, ""},
		"vpn-client":      {43, false, ""},
	}
	got := DefaultApps()
	if len(got) != len(want) {
		t.Fatalf("%d default apps, want %d", len(got), len(want))
	}
	for _, a := range got {
		w, ok := want[a.App]
		if !ok {
			t.Fatalf("unexpected default app %q", a.App)
		}
		if a.Port != w.port || a.AutoStart != w.auto || strings.Join(a.Args, " ") != w.args {
			t.Errorf("%s: port %d auto %v args %q, want %+v", a.App, a.Port, a.AutoStart, a.Args, w)
		}
	}
}

func TestValidate(t *testing.T) {
	other, _ := cipher.GenerateKeyPair()
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"no version", func(c *Config) { c.Version = "" }, `version: missing: this build reads config version "v1"`},
		{"future version", func(c *Config) { c.Version = "v9" }, `version: "v9": this build reads config version "v1" only`},
		{"no sk", func(c *Config) { c.SK = cipher.SecKey{} }, "sk: missing"},
		{"no pk", func(c *Config) { c.PK = cipher.PubKey{} }, "pk: missing: it must be " + "0"},
		{"foreign pk", func(c *Config) { c.PK = other }, `pk: "` + other.Hex() + `": does not belong to sk`},
		{"bad dmsg url", func(c *Config) { c.Dmsg.Discovery = "dmsgd.example" }, `dmsg.discovery: "dmsgd.example": want an http:// or https:// URL`},
		{"sessions", func(c *Config) { c.Dmsg.SessionsCount = 0 }, "dmsg.sessions_count: 0: want 1 to 64"},
		{"pk table addr", func(c *Config) { c.STCP.PKTable[other] = "nohost" }, `stcp.pk_table["` + other.Hex() + `"]: "nohost": want "host:port"`},
		{"pk table self", func(c *Config) { c.STCP.PKTable[c.PK] = "1.2.3.4:7777" }, "this is the visor's own key"},
		{"stcp listen", func(c *Config) { c.STCP.LocalAddress = "7777" }, `stcp.local_address: "7777"`},
		{"persistent type", func(c *Config) {
			c.Transport.Persistent = []PersistentTransport{{PK: other, Type: "tcp"}}
		}, `transport.persistent[0].type: "tcp": want one of [stcp stcpr sudph dmsg]`},
		{"persistent self", func(c *Config) {
			c.Transport.Persistent = []PersistentTransport{{PK: c.PK, Type: "stcp"}}
		}, "transport.persistent[0].pk"},
		{"persistent dup", func(c *Config) {
			c.Transport.Persistent = []PersistentTransport{{PK: other, Type: "dmsg"}, {PK: other, Type: "dmsg"}}
		}, "transport.persistent[1]: repeats an earlier entry"},
		{"min hops", func(c *Config) { c.Routing.MinHops = -1 }, "routing.min_hops: -1: want 0 to 16"},
		{"app name", func(c *Config) { c.Apps[0].App = "../evil" }, `apps[0].app: "../evil": want a name`},
		{"app dup name", func(c *Config) { c.Apps[1].App = "skychat" }, `apps[1].app: "skychat": already used by apps[0]`},
		{"app port 0", func(c *Config) { c.Apps[2].Port = 0 }, "apps[2].port: 0: port 0 is the router's"},
		{"app dup port", func(c *Config) { c.Apps[4].Port = 1 }, "apps[4].port: 1: already used by apps[0]"},
		{"hypervisor key", func(c *Config) { c.Hypervisors = []HypervisorConfig{{}} }, "hypervisors[0].public_key: missing"},
		{"cli addr", func(c *Config) { c.CLIAddr = "" }, "cli_addr: missing"},
		{"cli addr form", func(c *Config) { c.CLIAddr = "localhost" }, `cli_addr: "localhost": want a unix socket path or host:port`},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, `log_level: "loud": want one of debug, info, warn, error`},
		{"app server", func(c *Config) { c.AppServerAddr = "" }, "app_server_addr: missing"},
		{"pty whitelist", func(c *Config) { c.Dmsgpty.Whitelist = []cipher.PubKey{{}} }, "dmsgpty.whitelist[0]: the key is empty"},
		{"pty sessions", func(c *Config) { c.Dmsgpty.MaxSessions = 65 }, "dmsgpty.max_sessions: 65: want 0 (the default, 4) to 64"},
		{"pty idle", func(c *Config) { c.Dmsgpty.IdleTimeout = "soon" }, `dmsgpty.idle_timeout: "soon": want a duration`},
		{"pty idle negative", func(c *Config) { c.Dmsgpty.IdleTimeout = "-1m" }, `dmsgpty.idle_timeout: "-1m"`},
		{"pty idle tiny", func(c *Config) { c.Dmsgpty.IdleTimeout = "1ns" }, `dmsgpty.idle_timeout: "1ns": want a duration of 1s or more`},
		{"pty shell", func(c *Config) { c.Dmsgpty.Shell = "bash" }, `dmsgpty.shell: "bash": want an absolute path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.mutate(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error:\n%v\ndoes not contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	c := validConfig(t)
	c.Dmsg.SessionsCount = 0
	c.LogLevel = "x"
	c.Routing.MinHops = 99
	err := c.Validate()
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Fatalf("%d problems reported, want 3:\n%v", n, err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	c := validConfig(t)
	c.UseServices("127.0.0.1")
	path := filepath.Join(dir, "skywire-config.json")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Fatalf("round trip changed the config:\n%s\n%s", a, b)
	}

	// The file must use exactly the contract's key names.
	var raw map[string]any
	data, _ := os.ReadFile(path)
	json.Unmarshal(data, &raw)
	for _, k := range []string{"version", "sk", "pk", "dmsg", "stcp", "transport", "routing", "service_discovery",
		"apps_path", "app_server_addr", "apps", "hypervisors", "cli_addr", "local_path", "log_level"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("key %q missing from the written config", k)
		}
	}
	for parent, keys := range map[string][]string{
		"dmsg": {"discovery", "sessions_count"}, "stcp": {"pk_table", "local_address"},
		"transport": {"discovery", "address_resolver", "persistent"}, "routing": {"route_finder", "min_hops"},
	} {
		m := raw[parent].(map[string]any)
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("key %s.%s missing from the written config", parent, k)
			}
		}
	}
	app := raw["apps"].([]any)[0].(map[string]any)
	for _, k := range []string{"app", "auto_start", "port", "args"} {
		if _, ok := app[k]; !ok {
			t.Errorf("key apps[].%s missing", k)
		}
	}

	// A misspelled key is named.
	bad := strings.Replace(string(data), `"sessions_count"`, `"session_count"`, 1)
	os.WriteFile(path, []byte(bad), 0o600)
	_, err = LoadConfig(path)
	if !errors.Is(err, configfile.ErrUnknownField) || !strings.Contains(err.Error(), `dmsg.session_count: unknown field (did you mean "sessions_count"?)`) {
		t.Fatalf("misspelled key: %v", err)
	}

	// An invalid value is named with the file.
	c.Dmsg.SessionsCount = 0
	c.Save(path)
	_, err = LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "dmsg.sessions_count: 0") {
		t.Fatalf("invalid value: %v", err)
	}
}

func TestResolvePath(t *testing.T) {
	if got := ResolvePath("/etc/skywire", "./local"); got != filepath.Join("/etc/skywire", "local") {
		t.Fatal(got)
	}
	if got := ResolvePath("/etc/skywire", "/var/lib/skywire"); got != "/var/lib/skywire" {
		t.Fatal(got)
	}
}

// The default config's apps are the built-in apps' table.
func TestDefaultAppsAreTheBuiltins(t *testing.T) {
	apps := DefaultApps()
	if len(apps) != len(appproto.Builtins) {
		t.Fatalf("%d default apps, %d built-ins", len(apps), len(appproto.Builtins))
	}
	for i, b := range appproto.Builtins {
		a := apps[i]
		if a.App != b.Name || a.Port != b.Port || a.AutoStart != b.AutoStart || (b.Addr != "") != slices.Contains(a.Args, b.Addr) {
			t.Errorf("default app %+v for built-in %+v", a, b)
		}
	}
}

func TestIdleTimeoutDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "0": -1, "0s": -1, "30m": 30 * time.Minute, "2h": 2 * time.Hour} {
		if got := (DmsgptyConfig{IdleTimeout: in}).IdleTimeoutDuration(); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}
