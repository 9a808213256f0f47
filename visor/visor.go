// Package visor is the skywire node: it owns the identity from its config,
// and serves the admin API (package admin) that `skywire cli` and
// hypervisors use to control it. Transports, the router and the app launcher
// attach here as they are built.
//
// Lifecycle: New checks the config and opens the admin listener, so that a
// bad config or a busy address fails before anything runs; Run serves until
// its context ends; Close releases what New took and is idempotent.
package visor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/buildinfo"
	"github.com/skyfleet/skywire/internal/configfile"
)

// TokenFile is the name, in local_path, of the admin token a visor with a
// TCP cli_addr requires.
const TokenFile = "cli-token"

// shutdownGrace bounds how long admin calls in progress may run after Run's
// context ends.
const shutdownGrace = 3 * time.Second

// Options are the run-time inputs that are not in the config file.
type Options struct {
	// ConfigPath is the file the config came from. Relative paths in the
	// config are resolved against its directory; "" means the working
	// directory.
	ConfigPath string
	// Log receives the visor's logs. Nil means no logs.
	Log *zap.Logger
}

// Visor is a running node.
type Visor struct {
	cfg        *Config
	configPath string
	log        *zap.Logger
	localPath  string
	cliAddr    string // as listened on: a resolved socket path or host:port
	started    time.Time

	ln  net.Listener
	api *admin.Server

	closeOnce sync.Once
}

// New checks cfg and prepares the visor: the local_path directory and the
// admin listener. Call Run to serve, or Close to give up.
func New(cfg *Config, opts Options) (*Visor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config is not valid:\n%w", err)
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	configPath := opts.ConfigPath
	if configPath != "" {
		if abs, err := filepath.Abs(configPath); err == nil {
			configPath = abs
		}
	}
	dir := filepath.Dir(configPath)
	if configPath == "" {
		dir, _ = os.Getwd()
	}
	v := &Visor{
		cfg:        cfg,
		configPath: configPath,
		log:        log.With(zap.String("pk", cfg.PK.Hex())),
		localPath:  ResolvePath(dir, defaultString(cfg.LocalPath, "./local")),
		started:    time.Now(),
	}
	if err := os.MkdirAll(v.localPath, 0o700); err != nil {
		return nil, fmt.Errorf("local_path: %w", err)
	}

	network, address, err := admin.ParseAddr(cfg.CLIAddr)
	if err != nil {
		return nil, fmt.Errorf("cli_addr: %w", err)
	}
	token := ""
	if network == "unix" {
		address = ResolvePath(dir, address)
	} else {
		if token, err = loadOrCreateToken(filepath.Join(v.localPath, TokenFile)); err != nil {
			return nil, fmt.Errorf("cli_addr: %w", err)
		}
	}
	if v.ln, err = admin.Listen(address); err != nil {
		return nil, fmt.Errorf("cli_addr: %w", err)
	}
	v.cliAddr = address
	if network == "tcp" {
		v.cliAddr = v.ln.Addr().String()
	}
	v.api = admin.NewServer(v.log.Named("admin"), token)
	v.registerAPI()
	return v, nil
}

// PK is the visor's public key.
func (v *Visor) PK() cipher.PubKey { return v.cfg.PK }

// CLIAddr is the address the admin API listens on (with the real port when
// cli_addr asked for port 0).
func (v *Visor) CLIAddr() string { return v.cliAddr }

// Run serves until ctx ends, then stops: admin calls in progress get a few
// seconds to finish. It returns nil after a requested stop.
func (v *Visor) Run(ctx context.Context) error {
	defer v.Close()
	v.log.Info("visor running",
		zap.String("version", buildinfo.Get().Version),
		zap.String("config", v.configPath),
		zap.String("cli_addr", v.cliAddr),
		zap.String("local_path", v.localPath))
	err := v.api.Serve(ctx, v.ln, shutdownGrace)
	v.log.Info("visor stopped")
	return err
}

// Close releases everything New took. It is safe to call more than once and
// after Run. Teardown order: the admin listener.
func (v *Visor) Close() error {
	v.closeOnce.Do(func() {
		if err := v.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			v.log.Debug("closing admin listener", zap.Error(err))
		}
	})
	return nil
}

func (v *Visor) registerAPI() {
	admin.Handle(v.api, admin.GetInfo, func(context.Context, admin.Empty) (admin.Info, error) {
		bi := buildinfo.Get()
		return admin.Info{
			PK:            v.cfg.PK,
			Version:       bi.Version,
			Build:         bi,
			StartedAt:     v.started.UTC(),
			UptimeSeconds: time.Since(v.started).Seconds(),
			ConfigPath:    v.configPath,
			LocalPath:     v.localPath,
			CLIAddr:       v.cliAddr,
		}, nil
	})
}

// loadOrCreateToken returns the admin token in path, creating it (random,
// mode 0600) on first use so that scripts keep working across restarts.
func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if len(tok) < 32 {
			return "", fmt.Errorf("token file %s holds fewer than 32 characters: delete it to have a new one made", path)
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read token: %w", err)
	}
	var raw [32]byte
	rand.Read(raw[:])
	tok := hex.EncodeToString(raw[:])
	err = configfile.WriteFile(path, []byte(tok+"\n"), configfile.Mode, false)
	if errors.Is(err, configfile.ErrExists) { // another visor made it meanwhile
		return loadOrCreateToken(path)
	}
	if err != nil {
		return "", err
	}
	return tok, nil
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
