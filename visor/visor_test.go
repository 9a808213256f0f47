package visor

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/skyfleet/skywire/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// shortDir is a temp dir short enough for unix socket paths.
func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "vis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// start runs a visor from cfg written into dir and returns it and a way to
// stop it that reports Run's result.
func start(t *testing.T, dir string, cfg Config) (*Visor, func() error) {
	t.Helper()
	path := filepath.Join(dir, "skywire-config.json")
	if err := cfg.Save(path); err != nil {
		t.Fatal(err)
	}
	v, err := New(&cfg, Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { stop() })
	return v, stop
}

func TestVisorInfoOverSocket(t *testing.T) {
	dir := shortDir(t)
	cfg := quietConfig(t)
	cfg.CLIAddr = "cli.sock" // relative: next to the config
	cfg.LocalPath = "state"
	v, stop := start(t, dir, cfg)

	sock := filepath.Join(dir, "cli.sock")
	if v.CLIAddr() != sock {
		t.Fatalf("CLIAddr = %q, want %q", v.CLIAddr(), sock)
	}
	if fi, err := os.Stat(filepath.Join(dir, "state")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("local_path not made 0700 next to the config: %v %v", err, fi)
	}
	c, err := admin.NewClient(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	info, err := admin.Call(context.Background(), c, admin.GetInfo, admin.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	if info.PK != cfg.PK {
		t.Fatalf("info pk %s, want %s", info.PK, cfg.PK)
	}
	if info.ConfigPath != filepath.Join(dir, "skywire-config.json") || info.LocalPath != filepath.Join(dir, "state") {
		t.Fatalf("info paths: %+v", info)
	}
	if info.Version == "" || info.UptimeSeconds < 0 || time.Since(info.StartedAt) < 0 {
		t.Fatalf("info: %+v", info)
	}

	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after a requested stop", err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after stop: %v", err)
	}
	if err := v.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestVisorTCPToken(t *testing.T) {
	dir := shortDir(t)
	cfg := quietConfig(t)
	cfg.CLIAddr = "127.0.0.1:0"
	v, _ := start(t, dir, cfg)

	tokPath := filepath.Join(dir, "local", TokenFile)
	b, err := os.ReadFile(tokPath)
	if err != nil {
		t.Fatalf("token file: %v", err)
	}
	if fi, _ := os.Stat(tokPath); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode().Perm())
	}
	tok := strings.TrimSpace(string(b))

	noTok, _ := admin.NewClient(v.CLIAddr(), "")
	defer noTok.Close()
	if _, err := admin.Call(context.Background(), noTok, admin.GetInfo, admin.Empty{}); !admin.IsCode(err, admin.CodeUnauthorized) {
		t.Fatalf("no token: %v", err)
	}
	c, _ := admin.NewClient(v.CLIAddr(), tok)
	defer c.Close()
	info, err := admin.Call(context.Background(), c, admin.GetInfo, admin.Empty{})
	if err != nil || info.PK != cfg.PK {
		t.Fatalf("with token: %v %v", info.PK, err)
	}

	// The token survives a restart.
	got, err := loadOrCreateToken(tokPath)
	if err != nil || got != tok {
		t.Fatalf("token changed: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	dir := shortDir(t)
	cfg := quietConfig(t)
	cfg.Dmsg.SessionsCount = 0
	if _, err := New(&cfg, Options{ConfigPath: filepath.Join(dir, "c.json")}); err == nil || !strings.Contains(err.Error(), "dmsg.sessions_count") {
		t.Fatalf("invalid config: %v", err)
	}

	cfg = quietConfig(t)
	cfg.CLIAddr = filepath.Join(dir, "cli.sock")
	start(t, dir, cfg)
	cfg2 := quietConfig(t)
	cfg2.CLIAddr = cfg.CLIAddr
	_, err := New(&cfg2, Options{ConfigPath: filepath.Join(dir, "c2.json")})
	if err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("busy cli_addr: %v", err)
	}
}

// A visor lists itself as public only when the address the resolver saw
// is its own: one behind NAT is seen at an address it does not have.
func TestOwnAddress(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:4000": true, "192.0.2.1:4000": false, "not an address": false} {
		if got := ownAddress(addr); got != want {
			t.Errorf("ownAddress(%q) = %v", addr, got)
		}
	}
}
