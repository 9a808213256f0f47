package hypervisor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/dmsg"
	"github.com/skyfleet/skywire/internal/acceptor"
	"github.com/skyfleet/skywire/internal/hvlink"
)

// Options are what a hypervisor is made with besides its config.
type Options struct {
	// ConfigPath is the config's file: relative paths in it are resolved
	// against its directory ("" means the working directory).
	ConfigPath string
	// Log receives the hypervisor's logs. Nil means none.
	Log *zap.Logger
	// Dmsg, when set, is the dmsg client to accept visors' links on (a
	// visor that is its own hypervisor shares its own); nil makes one from
	// the config.
	Dmsg *dmsg.Client
	// Local, when set, is a visor in this process, managed directly.
	Local *LocalVisor
}

// LocalVisor is a visor served in the hypervisor's process.
type LocalVisor struct {
	PK     cipher.PubKey
	Client *admin.Client
}

// Hypervisor serves the web UI and the REST API (docs/protocol.md,
// "Hypervisor REST API") and keeps the links visors open to it.
type Hypervisor struct {
	cfg   *Config
	opts  Options
	log   *zap.Logger
	store *store
	links *Links
	cache *cache
	hub   *hub
	setup setupCode
	thr   *throttle
	tls   bool

	ln       net.Listener
	linkLn   net.Listener // link_addr's (nil if none)
	mux      *http.ServeMux
	patterns []string // every route, for tests and docs

	runCtx    context.Context // the watchers' context, once Run began
	runOnce   sync.Once
	closeOnce sync.Once
	ready     chan struct{} // closed when Run has begun
}

// ResolvePath resolves p against dir unless it is absolute.
func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// New opens the database, listens on http_addr and prepares the routes;
// Run serves. If no password is set yet, SetupCode has the one-time code.
func New(cfg *Config, opts Options) (*Hypervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config is not valid:\n%w", err)
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}
	dir, _ := os.Getwd()
	if opts.ConfigPath != "" {
		if abs, err := filepath.Abs(opts.ConfigPath); err == nil {
			dir = filepath.Dir(abs)
		}
	}
	h := &Hypervisor{cfg: cfg, opts: opts, log: log, hub: newHub(), thr: newThrottle(), ready: make(chan struct{})}
	var err error
	if h.store, err = openStore(cfg.storeSpec(dir)); err != nil {
		return nil, err
	}
	if h.cache, err = newCache(log, h.store, h.hub.push); err != nil {
		h.store.Close()
		return nil, err
	}
	h.links = NewLinks(log.Named("links"), h.onLink)
	if hash, err := h.store.passwordHash(); err != nil {
		h.store.Close()
		return nil, err
	} else if hash == "" {
		h.setup.set(newSetupCode())
	}
	var tlsCfg *tls.Config
	if cfg.EnableTLS {
		cert, err := tls.LoadX509KeyPair(resolvePath(dir, cfg.TLSCertFile), resolvePath(dir, cfg.TLSKeyFile))
		if err != nil {
			h.store.Close()
			return nil, fmt.Errorf("enable_tls: %w (make a pair with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 -subj /CN=localhost -keyout %s -out %s`)", err, cfg.TLSKeyFile, cfg.TLSCertFile)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
		h.tls = true
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		h.store.Close()
		return nil, fmt.Errorf("http_addr %s: %w (is another hypervisor running? change http_addr in the config)", cfg.HTTPAddr, err)
	}
	h.ln = acceptor.Listener(ln, acceptor.Limits{PerSource: 256, Total: 4096})
	if cfg.LinkAddr != "" {
		if h.linkLn, err = net.Listen("tcp", cfg.LinkAddr); err != nil {
			ln.Close()
			h.store.Close()
			return nil, fmt.Errorf("link_addr %s: %w", cfg.LinkAddr, err)
		}
	}
	if tlsCfg != nil {
		h.ln = tls.NewListener(h.ln, tlsCfg)
	}
	h.routes()
	return h, nil
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Addr is the address the UI listens on.
func (h *Hypervisor) Addr() string { return h.ln.Addr().String() }

// URL is the UI's address.
func (h *Hypervisor) URL() string {
	if h.tls {
		return "https://" + h.Addr()
	}
	return "http://" + h.Addr()
}

// LinkAddr is where direct links arrive ("" if link_addr is not set).
func (h *Hypervisor) LinkAddr() string {
	if h.linkLn == nil {
		return ""
	}
	return h.linkLn.Addr().String()
}

// PK is the key visors list in their hypervisors.
func (h *Hypervisor) PK() cipher.PubKey { return h.cfg.PK }

// SetupCode is the one-time code that sets the first password in the UI
// ("" once a password is set).
func (h *Hypervisor) SetupCode() string {
	h.setup.mu.Lock()
	defer h.setup.mu.Unlock()
	return h.setup.code
}

// Links are the visors' links.
func (h *Hypervisor) Links() *Links { return h.links }

// onLink watches a new link once Run has begun.
func (h *Hypervisor) onLink(lk *Link) {
	<-h.ready
	h.cache.watch(h.runCtx, lk, h.opts.Local != nil && lk.PK == h.opts.Local.PK)
}

// Close releases what New took (Run does it when it returns).
func (h *Hypervisor) Close() error {
	h.closeOnce.Do(func() {
		h.ln.Close()
		if h.linkLn != nil {
			h.linkLn.Close()
		}
		h.store.Close()
	})
	return nil
}

// Run serves until ctx ends, then closes everything.
func (h *Hypervisor) Run(ctx context.Context) error {
	defer h.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.runCtx = ctx
	h.runOnce.Do(func() { close(h.ready) })

	errc := make(chan error, 3)
	var wg sync.WaitGroup
	spawn := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && ctx.Err() == nil {
				errc <- err
			}
		}()
	}
	spawn(func() error { h.cache.run(ctx); return nil })
	spawn(func() error { h.expireSessions(ctx); return nil })
	if dc, err := h.dmsgClient(ctx, spawn); err != nil {
		return err
	} else if dc != nil {
		spawn(func() error {
			select {
			case <-dc.Ready():
			case <-ctx.Done():
				return nil
			}
			ln, err := dc.Listen(h.cfg.DmsgPort)
			if err != nil {
				return fmt.Errorf("dmsg port %d: %w", h.cfg.DmsgPort, err)
			}
			h.log.Info("accepting visors on dmsg", zap.Uint16("port", h.cfg.DmsgPort))
			return h.links.Serve(ctx, ln)
		})
	}
	if h.linkLn != nil {
		ln := hvlink.Listen(h.linkLn, h.cfg.SK)
		h.log.Info("accepting direct visor links", zap.String("addr", ln.Addr().String()))
		spawn(func() error { return h.links.Serve(ctx, ln) })
	}
	if l := h.opts.Local; l != nil {
		h.links.AddLocal(ctx, l.PK, l.Client)
	}
	hs := &http.Server{
		Handler:           h.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(h.log.Named("http")),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	spawn(func() error {
		if err := hs.Serve(h.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	h.log.Info("hypervisor serving", zap.String("url", h.URL()), zap.String("pk", h.cfg.PK.Hex()))
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	if hs.Shutdown(sctx) != nil {
		hs.Close()
	}
	wg.Wait()
	return err
}

// dmsgClient is the client to accept links on: the one given, or one made
// from the config and run by spawn (nil without a dmsg discovery).
func (h *Hypervisor) dmsgClient(ctx context.Context, spawn func(func() error)) (*dmsg.Client, error) {
	if h.opts.Dmsg != nil {
		return h.opts.Dmsg, nil
	}
	if h.cfg.Dmsg.Discovery == "" {
		h.log.Warn("no dmsg.discovery in the config: only a visor in this process can be managed")
		return nil, nil
	}
	dc, err := dmsg.NewClient(dmsg.ClientConfig{SK: h.cfg.SK, Discovery: h.cfg.Dmsg.Discovery, SessionsCount: h.cfg.Dmsg.SessionsCount, Log: h.log.Named("dmsg")})
	if err != nil {
		return nil, fmt.Errorf("dmsg: %w", err)
	}
	spawn(func() error { return dc.Run(ctx) })
	return dc, nil
}

// expireSessions drops expired sessions from the database now and then.
func (h *Hypervisor) expireSessions(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if err := h.store.dropExpiredSessions(time.Now()); err != nil {
			h.log.Warn("dropping expired sessions", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SetPassword sets (or resets) the password in the database of the
// hypervisor configured by cfg, ending every session. The hypervisor must
// not be running (the database is held by one process at a time).
func SetPassword(cfg *Config, configPath, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	dir, _ := os.Getwd()
	if configPath != "" {
		if abs, err := filepath.Abs(configPath); err == nil {
			dir = filepath.Dir(abs)
		}
	}
	st, err := openStore(cfg.storeSpec(dir))
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.setPasswordHash(hashPassword(password)); err != nil {
		return err
	}
	return st.addAudit(&AuditEntry{Time: time.Now().UTC(), Action: "password set from the shell", Status: http.StatusOK})
}
