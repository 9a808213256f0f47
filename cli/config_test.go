package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/visor"
)

// referenceConfig is a reference Skywire v1.3 skywire-config.json, as
// `skywire-cli config gen` writes it (../shared/reference/skywire-reference.md
// §2), with a peer in pk_table, a hypervisor, a persistent transport and a
// passcode on skysocks.
func referenceConfig(sk cipher.SecKey, peer, hv cipher.PubKey) string {
	return `{
  "version": "v1.3.19", "sk": "` + sk.Hex() + `", "pk": "` + sk.PubKey().Hex() + `",
  "dmsg": {"discovery": "http://dmsgd.skywire.skycoin.com", "sessions_count": 2, "servers": [], "servers_type": "all"},
  "dmsgpty": {"dmsg_port": 22, "cli_network": "unix", "cli_address": "/tmp/dmsgpty.sock", "whitelist": ["` + hv.Hex() + `"]},
  "skywire-tcp": {"pk_table": {"` + peer.Hex() + `": "192.168.1.20:7777"}, "listening_address": ":7777"},
  "transport": {"discovery": "http://tpd.skywire.skycoin.com", "address_resolver": "http://ar.skywire.skycoin.com",
    "public_autoconnect": true, "transport_setup": ["` + hv.Hex() + `"],
    "log_store": {"type": "file", "location": "./local/transport_logs", "rotation_interval": "168h0m0s"},
    "stcpr_port": 0, "sudph_port": 0},
  "routing": {"route_setup_nodes": ["` + hv.Hex() + `"], "route_finder": "http://rf.skywire.skycoin.com",
    "route_finder_timeout": "10s", "min_hops": 1},
  "uptime_tracker": {"addr": "http://ut.skywire.skycoin.com"},
  "launcher": {"service_discovery": "http://sd.skycoin.com", "server_addr": "localhost:5505", "bin_path": "./",
    "display_node_ip": false,
    "apps": [
      {"name": "vpn-client", "binary": "skywire", "args": ["app","vpn-client","--dns","1.1.1.1"], "auto_start": false, "port": 43},
      {"name": "skychat", "binary": "skywire", "args": ["app","skychat","--addr",":8001"], "auto_start": true, "port": 1},
      {"name": "skysocks", "binary": "skywire", "args": ["app","skysocks"], "auto_start": true, "port": 3},
      {"name": "skysocks-client", "binary": "skywire", "args": ["app","skysocks-client","--addr",":1080"], "auto_start": false, "port": 13},
      {"name": "vpn-server", "binary": "skywire", "args": ["app","vpn-server"], "auto_start": false, "port": 44}]},
  "survey_whitelist": ["` + hv.Hex() + `"], "hypervisors": ["` + hv.Hex() + `"], "cli_addr": "localhost:3435", "log_level": "info",
  "local_path": "./local", "dmsghttp_server_path": "./local/custom", "stun_servers": ["139.162.12.30:3478"],
  "shutdown_timeout": "10s", "is_public": false,
  "persistent_transports": [{"pk": "` + peer.Hex() + `", "type": "stcp"}]
}`
}

// `config migrate` turns a reference v1.x config into one `config check`
// passes, keeping keys, pk_table, apps, hypervisors and persistent
// transports, and listing what it could not keep.
func TestConfigMigrate(t *testing.T) {
	dir := t.TempDir()
	_, sk := cipher.GenerateKeyPair()
	peer, _ := cipher.GenerateKeyPair()
	hv, _ := cipher.GenerateKeyPair()
	old := filepath.Join(dir, "skywire-config.json")
	if err := os.WriteFile(old, []byte(referenceConfig(sk, peer, hv)), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "skywire.json")
	code, stdout, errs := runMain(t, "", "skywire", "cli", "config", "migrate", old, "-o", out, "--json")
	if code != ExitOK {
		t.Fatalf("migrate: exit %d: %s", code, errs)
	}
	var res migrateResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("migrate --json printed %q: %v", stdout, err)
	}
	for _, want := range []string{"transport.transport_setup", "routing.route_setup_nodes", "uptime_tracker.addr", "survey_whitelist", "stun_servers", "cli_addr localhost:3435"} {
		if !strings.Contains(strings.Join(res.NotKept, "\n"), want) {
			t.Errorf("not_kept does not name %s: %q", want, res.NotKept)
		}
	}
	cfg, err := visor.LoadConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PK != sk.PubKey() || cfg.STCP.PKTable[peer] != "192.168.1.20:7777" || len(cfg.Hypervisors) != 1 || cfg.Hypervisors[0].PublicKey != hv ||
		cfg.Dmsg.SessionsCount != 2 || cfg.Routing.MinHops != 1 || len(cfg.Transport.Persistent) != 1 || !cfg.Transport.PublicAutoconnect ||
		cfg.Dmsg.Discovery != "http://dmsgd.skywire.skycoin.com" || len(cfg.Dmsgpty.Whitelist) != 1 {
		t.Fatalf("migrated config lost something: %+v", cfg)
	}
	apps := map[string]visor.AppConfig{}
	for _, a := range cfg.Apps {
		apps[a.App] = a
	}
	if a := apps["skychat"]; !a.AutoStart || strings.Join(a.Args, " ") != "--addr :8001" || a.Port != 1 {
		t.Fatalf("skychat: %+v", a)
	}
	if a := apps["vpn-client"]; a.AutoStart || strings.Join(a.Args, " ") != "--dns 1.1.1.1" {
		t.Fatalf("vpn-client: %+v", a)
	}
	if len(apps) != 5 {
		t.Fatalf("%d apps, want the 5", len(apps))
	}
	if code, stdout, errs := runMain(t, "", "skywire", "cli", "config", "check", out); code != ExitOK || !strings.Contains(stdout, "valid") {
		t.Fatalf("config check of the migrated file: exit %d: %s %s", code, stdout, errs)
	}
	// Never over an existing file without -f.
	if code, _, errs := runMain(t, "", "skywire", "cli", "config", "migrate", old, "-o", out); code != ExitFail || !strings.Contains(errs, "already exists") {
		t.Fatalf("migrate over an existing file: exit %d: %s", code, errs)
	}
	// A config of another kind or version is refused with the reason.
	bad := filepath.Join(dir, "v0.json")
	os.WriteFile(bad, []byte(strings.Replace(referenceConfig(sk, peer, hv), "v1.3.19", "v0.4.1", 1)), 0o600)
	if code, _, errs := runMain(t, "", "skywire", "cli", "config", "migrate", bad, "-n"); code != ExitFail || !strings.Contains(errs, "v1.x") {
		t.Fatalf("migrate of a v0 config: exit %d: %s", code, errs)
	}
}

// `config check` is Nebula's -test: 0 for a valid file, 1 with every
// problem for a broken one, and a warning for a file others may read.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if code, _, errs := runMain(t, "", "skywire", "cli", "config", "gen", "-o", good); code != ExitOK {
		t.Fatalf("config gen: exit %d: %s", code, errs)
	}
	if code, stdout, _ := runMain(t, "", "skywire", "cli", "config", "check", good); code != ExitOK || !strings.Contains(stdout, "valid") {
		t.Fatalf("check of a fresh config: exit %d %q", code, stdout)
	}
	os.Chmod(good, 0o644)
	if code, _, errs := runMain(t, "", "skywire", "cli", "config", "check", good); code != ExitOK || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("a world-readable config: exit %d, warning %q", code, errs)
	}
	b, _ := os.ReadFile(good)
	broken := filepath.Join(dir, "broken.json")
	s := strings.Replace(string(b), `"sessions_count": 1`, `"sessions_count": 0`, 1)
	s = strings.Replace(s, `"log_level": "info"`, `"log_level": "loud"`, 1)
	os.WriteFile(broken, []byte(s), 0o600)
	code, stdout, errs := runMain(t, "", "skywire", "cli", "config", "check", broken, "--json")
	var res checkResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || code != ExitFail || res.Valid || len(res.Problems) != 2 {
		t.Fatalf("check of a broken config: exit %d %+v %v %s", code, res, err, errs)
	}
	hv := filepath.Join(dir, "hypervisor.json")
	if code, _, errs := runMain(t, "", "skywire", "hypervisor", "gen-config", "-o", hv); code != ExitOK {
		t.Fatalf("hypervisor gen-config: exit %d: %s", code, errs)
	}
	if code, stdout, errs := runMain(t, "", "skywire", "cli", "config", "check", hv); code != ExitOK || !strings.Contains(stdout, "a valid hypervisor config") {
		t.Fatalf("check of a hypervisor config: exit %d %q %s", code, stdout, errs)
	}
	if code, stdout, _ := runMain(t, "", "skywire", "cli", "config", "gen-keys", "--json"); code != ExitOK || !strings.Contains(stdout, `"sk"`) {
		t.Fatalf("gen-keys: exit %d %q", code, stdout)
	}
}
