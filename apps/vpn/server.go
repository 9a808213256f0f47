package vpn

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/internal/hostcfg"
	"github.com/skyfleet/skywire/internal/packets"
)

// ServerConfig configures vpn-server.
type ServerConfig struct {
	// Pool is where clients' /30s come from (zero: DefaultPool).
	Pool netip.Prefix
	// Passcode, if set, must be in every client's Hello.
	Passcode string
	// Netifc is the interface clients' traffic leaves by ("": the default
	// route's).
	Netifc string
	// Secure keeps clients out of the server's own networks and host
	// (ICMP to the tunnel address excepted).
	Secure bool
	// StatePath is the state file of the host changes (hostcfg).
	StatePath string
	Log       *zap.Logger
}

// handshakeTimeout bounds each side's handshake message.
const handshakeTimeout = 10 * time.Second

// Server is vpn-server.
type Server struct {
	cfg     ServerConfig
	log     *zap.Logger
	subnets *subnets
	journal *hostcfg.Journal
	seq     atomic.Uint32
}

// NewServer checks cfg and undoes what a crashed server left on the host.
func NewServer(cfg ServerConfig) (*Server, error) {
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("vpn-server runs on Linux (its forwarding and NAT are iptables'); this is %s: run vpn-client here", runtime.GOOS)
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if !cfg.Pool.IsValid() {
		cfg.Pool = DefaultPool
	}
	sn, err := newSubnets(cfg.Pool)
	if err != nil {
		return nil, err
	}
	j, err := hostcfg.Open(cfg.StatePath, nil)
	if err != nil {
		return nil, err
	}
	if j.Pending() {
		cfg.Log.Warn("restoring the host changes a previous run left", zap.String("state", cfg.StatePath))
		if err := j.Restore(); err != nil {
			return nil, fmt.Errorf("restoring what a previous run left: %w", err)
		}
	}
	return &Server{cfg: cfg, log: cfg.Log, subnets: sn, journal: j}, nil
}

// setUpHost enables forwarding and NAT for the pool (and, secure, keeps
// clients off the host's own networks), recording every change.
func (s *Server) setUpHost() error {
	dev := s.cfg.Netifc
	if dev == "" {
		var err error
		if dev, err = defaultDev(); err != nil {
			return err
		}
	}
	pool := s.cfg.Pool.String()
	steps := []func() error{
		func() error { return sysctl(s.journal, "net.ipv4.ip_forward", "1") },
		func() error {
			return iptables(s.journal, "iptables", "nat", "-A", "POSTROUTING", "-s", pool, "-o", dev, "-j", "MASQUERADE")
		},
		func() error {
			return iptables(s.journal, "iptables", "filter", "-I", "FORWARD", "-s", pool, "-j", "ACCEPT")
		},
		func() error {
			return iptables(s.journal, "iptables", "filter", "-I", "FORWARD", "-d", pool, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
		},
		// TCP inside the tunnel uses its large MTU; beyond, segments must
		// fit the way out.
		func() error {
			return iptables(s.journal, "iptables", "mangle", "-A", "FORWARD", "-s", pool, "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS", "--clamp-mss-to-pmtu")
		},
		func() error {
			return iptables(s.journal, "iptables", "mangle", "-A", "FORWARD", "-d", pool, "-p", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-j", "TCPMSS", "--clamp-mss-to-pmtu")
		},
	}
	if s.cfg.Secure {
		for _, p := range localPrefixes() {
			if p.Overlaps(s.cfg.Pool) || p.Addr().IsLoopback() {
				continue
			}
			ps := p.String()
			steps = append(steps, func() error {
				return iptables(s.journal, "iptables", "filter", "-I", "FORWARD", "-s", pool, "-d", ps, "-j", "DROP")
			})
		}
		steps = append(steps,
			func() error {
				return iptables(s.journal, "iptables", "filter", "-I", "INPUT", "-s", pool, "-j", "DROP")
			},
			func() error {
				return iptables(s.journal, "iptables", "filter", "-I", "INPUT", "-s", pool, "-p", "icmp", "-j", "ACCEPT")
			})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	s.log.Info("forwarding and NAT set up", zap.String("pool", pool), zap.String("netifc", dev), zap.Bool("secure", s.cfg.Secure))
	return nil
}

// Serve sets the host up, then serves clients accepted on l until ctx
// ends; then it closes every tunnel and restores the host.
func (s *Server) Serve(ctx context.Context, l net.Listener) (err error) {
	defer func() {
		if rerr := s.journal.Restore(); rerr != nil {
			s.log.Error("restoring the host", zap.Error(rerr))
			if err == nil {
				err = rerr
			}
		}
	}()
	if err := s.setUpHost(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			if err := s.serveClient(ctx, c); err != nil && ctx.Err() == nil {
				s.log.Info("client refused", zap.String("remote", c.RemoteAddr().String()), zap.Error(err))
			}
		}()
	}
}

// serveClient runs one client's tunnel.
func (s *Server) serveClient(ctx context.Context, c net.Conn) error {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	var hello Hello
	if err := readJSON(c, &hello); err != nil {
		writeJSON(c, Welcome{Status: StatusBadRequest, Message: "a malformed hello: " + err.Error()})
		return fmt.Errorf("handshake: %w", err)
	}
	if s.cfg.Passcode != "" && subtle.ConstantTimeCompare([]byte(hello.Passcode), []byte(s.cfg.Passcode)) != 1 {
		writeJSON(c, Welcome{Status: StatusForbidden, Message: "wrong passcode"})
		return fmt.Errorf("wrong passcode")
	}
	sub, ok := s.subnets.take(hello.Previous, append(localPrefixes(), hello.InUse...))
	if !ok {
		writeJSON(c, Welcome{Status: StatusNoSubnets, Message: "no free subnet in " + s.cfg.Pool.String()})
		return fmt.Errorf("no free subnet")
	}
	defer s.subnets.release(sub)
	srvIP, clIP := ends(sub)
	offload := hello.Offload && canOffload
	dev, err := openTUN("swvpns"+strconv.Itoa(int(s.seq.Add(1))), offload)
	if err != nil {
		writeJSON(c, Welcome{Status: StatusInternal, Message: "the server cannot make a tunnel: " + err.Error()})
		return err
	}
	defer dev.Close()
	if err := configureTUN(dev.Name(), netip.PrefixFrom(srvIP, 30), clIP); err != nil {
		writeJSON(c, Welcome{Status: StatusInternal, Message: err.Error()})
		return err
	}
	if err := writeJSON(c, Welcome{Status: StatusOK, Client: netip.PrefixFrom(clIP, 30), Server: srvIP, MTU: MTU, Offload: offload}); err != nil {
		return err
	}
	c.SetDeadline(time.Time{})
	s.log.Info("client connected", zap.String("remote", c.RemoteAddr().String()), zap.String("tunnel", clIP.String()), zap.String("dev", dev.Name()), zap.Bool("offload", offload))
	var n packets.Counters
	err = carry(ctx, c, dev, &n, func(*path) {}, func(p *path, kind byte, body []byte) error {
		if kind == KindProbe {
			return p.send(KindAnswer, body)
		}
		return nil
	})
	s.log.Info("client gone", zap.String("remote", c.RemoteAddr().String()), zap.String("tunnel", clIP.String()), zap.Error(err))
	return nil
}
