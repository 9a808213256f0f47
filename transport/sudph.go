package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/acceptor"
	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/svc/ar"
	"github.com/skyfleet/skywire/svc/httpauth"
)

// sudph: one UDP socket per visor, shared by three users: QUIC (quic-go),
// the address resolver's BIND/BOUND/PUNCH-REQ packets, and PUNCH packets
// between visors (ours all start below 0x40, which QUIC never does).
//
// Dial: resolve the peer at the resolver (which tells the peer to punch
// towards us), punch towards the peer, then a QUIC handshake that QUIC
// retransmits until both NATs are open, and one stream.
//
// NATs: a packet that reaches the peer's NAT before the peer's own packets
// opened it is dropped there, and (on Linux NATs at least) leaves a
// conntrack entry that moves the peer's later mapping to another port, so
// the two never meet. So each side first sends PunchTTL-limited punches,
// which open its own NAT and die before the peer's, and the dialer waits
// PunchWait for the peer to do the same before QUIC starts.
//
// Authentication and encryption: QUIC's TLS 1.3 encrypts (its certificate
// proves nothing); a Noise XK handshake on the stream authenticates the
// keys, with the TLS session's exporter value in its prologue, so it
// completes only if both ends share that TLS session. Data then flows on
// the stream encrypted once, by QUIC, not twice.

const sudphALPN = "skywire-sudph/1"

// Punching.
const (
	// PunchTTL is the time-to-live of punch packets: past our NAT and the
	// next router, not as far as the peer's NAT.
	PunchTTL = 2
	// PunchWait is how long the dialer lets both sides punch before QUIC.
	PunchWait = 150 * time.Millisecond
	punches   = 3
)

var quicConfig = &quic.Config{
	HandshakeIdleTimeout:       10 * time.Second,
	MaxIdleTimeout:             20 * time.Second,
	KeepAlivePeriod:            5 * time.Second, // keeps the NAT mappings open
	MaxIncomingStreams:         1,
	MaxIncomingUniStreams:      -1,
	InitialStreamReceiveWindow: 1 << 20,
	MaxStreamReceiveWindow:     16 << 20,
	MaxConnectionReceiveWindow: 24 << 20,
}

var (
	certOnce sync.Once
	cert     tls.Certificate
)

func serverTLS() *tls.Config {
	certOnce.Do(func() {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
		cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	})
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{sudphALPN}, MinVersion: tls.VersionTLS13}
}

func clientTLS() *tls.Config {
	// The certificate proves nothing here; the Noise XK handshake on the
	// stream authenticates the peer's key.
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{sudphALPN}, MinVersion: tls.VersionTLS13}
}

// SUDPHNet is the sudph network.
type SUDPHNet struct {
	sk    cipher.SecKey
	ar    *ar.Client
	arUDP *net.UDPAddr
	udp   *net.UDPConn
	tr    *quic.Transport
	ln    *quic.Listener
	log   *zap.Logger

	mu       sync.Mutex // guards nonce, observed
	nonce    [16]byte   // of the last BIND
	observed string     // our address as the resolver sees it
	bound    chan struct{}
	boundSet sync.Once
}

// NewSUDPH opens the UDP socket on listen (":0" for any port).
func NewSUDPH(sk cipher.SecKey, resolver *ar.Client, listen string, log *zap.Logger) (*SUDPHNet, error) {
	arUDP, err := resolver.UDPAddr()
	if err != nil {
		return nil, fmt.Errorf("sudph: the address resolver's UDP address: %w", err)
	}
	// IPv4 unless an IPv6 address is asked for: punches carry an IPv4 TTL.
	network := "udp4"
	if host, _, err := net.SplitHostPort(listen); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
			network = "udp6"
		}
	}
	la, err := net.ResolveUDPAddr(network, listen)
	if err != nil {
		return nil, fmt.Errorf("sudph: %w", err)
	}
	udp, err := net.ListenUDP(network, la)
	if err != nil {
		return nil, fmt.Errorf("sudph: listen on %s: %w", listen, err)
	}
	udp.SetReadBuffer(4 << 20)
	udp.SetWriteBuffer(4 << 20)
	tr := &quic.Transport{Conn: udp}
	ln, err := tr.Listen(serverTLS(), quicConfig)
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, fmt.Errorf("sudph: %w", err)
	}
	return &SUDPHNet{sk: sk, ar: resolver, arUDP: arUDP, udp: udp, tr: tr, ln: ln, log: log, bound: make(chan struct{})}, nil
}

// Type implements Network.
func (n *SUDPHNet) Type() Type { return SUDPH }

// Addr is the local UDP address.
func (n *SUDPHNet) Addr() net.Addr { return n.udp.LocalAddr() }

// Observed is our address as the resolver last saw it ("" before BOUND).
func (n *SUDPHNet) Observed() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.observed
}

// Dial implements Network.
func (n *SUDPHNet) Dial(ctx context.Context, remote cipher.PubKey) (Conn, error) {
	select {
	case <-n.bound:
	case <-ctx.Done():
		return nil, fmt.Errorf("not bound at the address resolver (is its UDP port %s reachable?): %w", n.arUDP, ctx.Err())
	}
	addr, err := n.ar.ResolveSUDPH(ctx, remote)
	if httpauth.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %w", ErrNoAddress, err)
	}
	if err != nil {
		return nil, err
	}
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	// Open our NAT towards the peer; the resolver asked the peer to do the
	// same towards us.
	if err := n.punch(ctx, raddr); err != nil {
		return nil, err
	}
	select {
	case <-time.After(PunchWait):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	qc, err := n.tr.Dial(ctx, raddr, clientTLS(), quicConfig)
	if err != nil {
		return nil, fmt.Errorf("quic handshake with %s: %w", raddr, err)
	}
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		qc.CloseWithError(0, "")
		return nil, err
	}
	c := &quicConn{Stream: st, qc: qc}
	binding, err := tlsBinding(qc)
	if err == nil {
		c.remote, err = noise.Authenticate(ctx, c, noise.Config{Pattern: noise.XK, Initiator: true, LocalSK: n.sk, RemotePK: remote, Purpose: purpose(SUDPH), Binding: binding})
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// tlsBinding is the channel binding of a QUIC connection: 32 bytes both
// ends derive from its TLS 1.3 session (RFC 5705/8446 exporter).
func tlsBinding(qc *quic.Conn) ([]byte, error) {
	st := qc.ConnectionState().TLS
	return st.ExportKeyingMaterial("skywire-sudph/1 channel binding", nil, 32)
}

// Close releases the socket (Serve does too; for a Network never served).
func (n *SUDPHNet) Close() error {
	n.ln.Close()
	n.tr.Close()
	n.udp.Close()
	return nil
}

// Serve implements Network: it binds at the resolver, answers punch
// requests, and accepts QUIC connections, until ctx ends; then it closes
// the socket.
func (n *SUDPHNet) Serve(ctx context.Context, accept func(Conn)) error {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		n.bindLoop(ctx)
	}()
	go func() {
		defer wg.Done()
		n.readLoop(ctx, &wg)
	}()
	err := n.acceptLoop(ctx, accept)
	n.ln.Close()
	n.tr.Close()
	n.udp.Close()
	wg.Wait()
	return err
}

func (n *SUDPHNet) acceptLoop(ctx context.Context, accept func(Conn)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	pending := &acceptor.Admission{Limits: acceptor.Limits{PerSource: maxPendingPerSource, Total: maxPendingHandshakes}}
	for {
		qc, err := n.ln.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sudph accept: %w", err)
		}
		done, ok := pending.Admit(qc.RemoteAddr())
		if !ok {
			qc.CloseWithError(0, "busy")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
			defer cancel()
			st, err := qc.AcceptStream(hctx)
			var c *quicConn
			var binding []byte
			if err == nil {
				c = &quicConn{Stream: st, qc: qc}
				binding, err = tlsBinding(qc)
			}
			if err == nil {
				c.remote, err = noise.Authenticate(hctx, c, noise.Config{Pattern: noise.XK, LocalSK: n.sk, Purpose: purpose(SUDPH), Binding: binding})
			}
			done()
			if err != nil {
				n.log.Debug("sudph handshake failed", zap.String("remote", qc.RemoteAddr().String()), zap.NamedError("err", err))
				qc.CloseWithError(0, "handshake failed")
				return
			}
			accept(c)
		}()
	}
}

// bindLoop sends BIND every ar.BindInterval (every second until the first
// BOUND).
func (n *SUDPHNet) bindLoop(ctx context.Context) {
	for {
		pkt, nonce, err := ar.EncodeBind(n.sk, time.Now())
		if err == nil {
			n.mu.Lock()
			n.nonce = nonce
			n.mu.Unlock()
			n.tr.WriteTo(pkt, n.arUDP)
		}
		wait := ar.BindInterval
		select {
		case <-n.bound:
		default:
			wait = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// readLoop handles the non-QUIC packets on the socket.
func (n *SUDPHNet) readLoop(ctx context.Context, wg *sync.WaitGroup) {
	buf := make([]byte, 1500)
	for {
		k, from, err := n.tr.ReadNonQUICPacket(ctx, buf)
		if err != nil {
			return
		}
		p := buf[:k]
		fromAR := sameUDP(from, n.arUDP)
		switch {
		case k > 0 && p[0] == ar.TypeBound && fromAR:
			nonce, observed, err := ar.ParseBound(p)
			n.mu.Lock()
			ok := err == nil && nonce == n.nonce
			if ok {
				n.observed = observed
			}
			n.mu.Unlock()
			if ok {
				n.boundSet.Do(func() {
					close(n.bound)
					n.log.Info("sudph: bound at the address resolver", zap.String("remote", observed))
				})
			}
		case k > 0 && p[0] == ar.TypePunchReq && fromAR:
			dialer, addr, err := ar.ParsePunchRequest(p)
			if err != nil {
				continue
			}
			to, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				continue
			}
			n.log.Debug("sudph: punching", zap.String("remote", dialer.Hex()), zap.String("addr", addr))
			wg.Add(1)
			go func() {
				defer wg.Done()
				n.punch(ctx, to)
			}()
		}
	}
}

// punch sends a few low-TTL PUNCHes to to, so our NAT lets its packets in
// without the punches reaching its NAT.
func (n *SUDPHNet) punch(ctx context.Context, to *net.UDPAddr) error {
	pkt := ar.EncodePunch(n.sk.PubKey())
	var err error
	for i := 0; i < punches; i++ {
		if err = sendTTL(n.udp, pkt, to, PunchTTL); err != nil {
			n.log.Debug("sudph: punch", zap.NamedError("err", err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func sameUDP(a net.Addr, b *net.UDPAddr) bool {
	ua, ok := a.(*net.UDPAddr)
	return ok && ua.Port == b.Port && ua.IP.Equal(b.IP)
}

// quicConn is one QUIC stream as a Conn; closing it closes its QUIC
// connection (one stream per connection).
type quicConn struct {
	*quic.Stream
	qc     *quic.Conn
	remote cipher.PubKey // authenticated by the bound Noise handshake
}

func (c *quicConn) RemotePK() cipher.PubKey { return c.remote }

func (c *quicConn) LocalAddr() net.Addr  { return c.qc.LocalAddr() }
func (c *quicConn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

func (c *quicConn) Close() error {
	c.Stream.CancelRead(0)
	c.Stream.Close()
	return c.qc.CloseWithError(0, "closed")
}
