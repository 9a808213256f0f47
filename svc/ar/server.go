package ar

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/ipv4"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/replay"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/store"
)

const (
	stcprPrefix  = "ar/stcpr/"
	sudphPrefix  = "ar/sudph/"
	maxBody      = 2 << 10
	maxLocalAddr = 8
)

// stcprBinding is what the resolver keeps for an stcpr bind.
type stcprBinding struct {
	Addr       string   `json:"addr"`        // observed ip : bound port
	LocalAddrs []string `json:"local_addrs"` // the visor's own LAN addresses
}

// BindRequest is POST /v1/bind/stcpr's body.
type BindRequest struct {
	Port       uint16   `json:"port"`
	LocalAddrs []string `json:"local_addrs,omitempty"`
}

// Resolved is a resolve answer.
type Resolved struct {
	Addr       string   `json:"addr"`
	LocalAddrs []string `json:"local_addrs,omitempty"`
}

// Server is the address resolver.
type Server struct {
	store store.Store
	auth  *httpauth.Verifier
	log   *zap.Logger
	now   func() time.Time
	mux   *http.ServeMux

	udpMu sync.Mutex // guards udp
	udp   *udpConn   // nil until ServeUDP: sudph is then unavailable

	seen *replay.Cache[[16]byte] // BIND nonces within their window
}

// NewServer returns the resolver over s.
func NewServer(s store.Store, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	srv := &Server{store: s, auth: httpauth.NewVerifier(1 << 20), log: log, now: time.Now, mux: http.NewServeMux(), seen: replay.New[[16]byte](1<<20, 2*MaxClockSkew)}
	srv.auth.ShareNonces(s)
	srv.mux.Handle("POST /v1/bind/stcpr", srv.auth.Require(maxBody, http.HandlerFunc(srv.bindSTCPR)))
	srv.mux.Handle("DELETE /v1/bind/stcpr", srv.auth.Require(0, http.HandlerFunc(srv.unbindSTCPR)))
	srv.mux.Handle("GET /v1/resolve/stcpr/{pk}", srv.auth.Require(0, http.HandlerFunc(srv.resolveSTCPR)))
	srv.mux.Handle("GET /v1/resolve/sudph/{pk}", srv.auth.Require(0, http.HandlerFunc(srv.resolveSUDPH)))
	httpauth.HandleHealth(srv.mux, "address-resolver")
	return srv
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) bindSTCPR(w http.ResponseWriter, r *http.Request) {
	pk, _ := httpauth.FromContext(r.Context())
	var req BindRequest
	if !httpauth.ReadJSON(w, r, maxBody, &req) {
		return
	}
	if req.Port == 0 {
		httpauth.WriteError(w, http.StatusBadRequest, "port 0 cannot be dialled")
		return
	}
	if len(req.LocalAddrs) > maxLocalAddr {
		httpauth.WriteError(w, http.StatusBadRequest, "too many local addresses")
		return
	}
	b := stcprBinding{Addr: net.JoinHostPort(remoteIP(r), strconv.Itoa(int(req.Port)))}
	for _, a := range req.LocalAddrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			httpauth.WriteError(w, http.StatusBadRequest, "local address "+strconv.Quote(a)+" is not an IP address")
			return
		}
		b.LocalAddrs = append(b.LocalAddrs, net.JoinHostPort(ip.String(), strconv.Itoa(int(req.Port))))
	}
	raw, _ := json.Marshal(b)
	err := store.Put(r.Context(), s.store, stcprPrefix+pk.Hex(), raw, STCPRTTL)
	if err != nil {
		httpauth.WriteStoreError(w, "address resolver", err)
		return
	}
	s.log.Debug("stcpr bound", zap.String("pk", pk.Hex()), zap.String("remote", b.Addr))
	httpauth.WriteJSON(w, http.StatusOK, Resolved{Addr: b.Addr})
}

func (s *Server) unbindSTCPR(w http.ResponseWriter, r *http.Request) {
	pk, _ := httpauth.FromContext(r.Context())
	s.store.Delete(r.Context(), stcprPrefix+pk.Hex())
	httpauth.WriteJSON(w, http.StatusOK, map[string]string{"unbound": pk.Hex()})
}

func (s *Server) resolveSTCPR(w http.ResponseWriter, r *http.Request) {
	pk, ok := httpauth.PathPK(w, r)
	if !ok {
		return
	}
	raw, err := s.store.Get(r.Context(), stcprPrefix+pk.Hex())
	if errors.Is(err, store.ErrNotFound) {
		httpauth.WriteError(w, http.StatusNotFound, pk.Short()+" has no stcpr address (is it online, with stcpr, using this resolver?)")
		return
	}
	var b stcprBinding
	if err != nil || json.Unmarshal(raw, &b) != nil {
		httpauth.WriteError(w, http.StatusInternalServerError, "stored binding unreadable")
		return
	}
	res := Resolved{Addr: b.Addr}
	// Behind the same public address the LAN addresses may be the only
	// way through (a NAT that does not hairpin).
	if host, _, _ := net.SplitHostPort(b.Addr); host == remoteIP(r) {
		res.LocalAddrs = b.LocalAddrs
	}
	httpauth.WriteJSON(w, http.StatusOK, res)
}

func (s *Server) resolveSUDPH(w http.ResponseWriter, r *http.Request) {
	target, ok := httpauth.PathPK(w, r)
	if !ok {
		return
	}
	s.udpMu.Lock()
	udp := s.udp
	s.udpMu.Unlock()
	if udp == nil {
		httpauth.WriteError(w, http.StatusServiceUnavailable, "this resolver does not serve sudph (no UDP socket)")
		return
	}
	who, _ := httpauth.FromContext(r.Context())
	mine, err := s.sudphBinding(r.Context(), who)
	if err != nil {
		httpauth.WriteError(w, http.StatusPreconditionFailed, "bind sudph over UDP first: the resolver must see your address to tell the target")
		return
	}
	theirs, err := s.sudphBinding(r.Context(), target)
	if err != nil {
		httpauth.WriteError(w, http.StatusNotFound, target.Short()+" has no sudph address (is it online, with sudph, using this resolver?)")
		return
	}
	to, err := net.ResolveUDPAddr("udp", theirs.Addr)
	if err == nil {
		// From the address the target bound to: its NAT opened only that.
		err = udp.send(EncodePunchRequest(who, mine.Addr), to, net.ParseIP(theirs.Via))
	}
	if err != nil {
		httpauth.WriteError(w, http.StatusInternalServerError, "telling the target: "+err.Error())
		return
	}
	httpauth.WriteJSON(w, http.StatusOK, Resolved{Addr: theirs.Addr})
}

// sudphBinding is what the resolver keeps for a sudph bind: where the
// visor's packets came from, and which of our addresses they came to.
type sudphBinding struct {
	Addr string `json:"addr"`
	Via  string `json:"via,omitempty"`
}

func (s *Server) sudphBinding(ctx context.Context, pk cipher.PubKey) (sudphBinding, error) {
	var b sudphBinding
	raw, err := s.store.Get(ctx, sudphPrefix+pk.Hex())
	if err == nil {
		err = json.Unmarshal(raw, &b)
	}
	return b, err
}

// udpConn sends from a chosen local address when the socket is bound to a
// wildcard one: a multi-homed resolver must answer from the address a
// packet came to, or the sender's NAT drops the answer.
type udpConn struct {
	pc net.PacketConn
	p4 *ipv4.PacketConn // nil: no control messages here; the kernel picks
}

func newUDPConn(pc net.PacketConn) *udpConn {
	u := &udpConn{pc: pc}
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok && ua.IP.To4() != nil {
		p4 := ipv4.NewPacketConn(pc)
		if p4.SetControlMessage(ipv4.FlagDst, true) == nil {
			u.p4 = p4
		}
	}
	return u
}

// read returns a packet, its sender and the local address it came to.
func (u *udpConn) read(b []byte) (int, net.Addr, net.IP, error) {
	if u.p4 == nil {
		n, from, err := u.pc.ReadFrom(b)
		return n, from, nil, err
	}
	n, cm, from, err := u.p4.ReadFrom(b)
	var via net.IP
	if cm != nil {
		via = cm.Dst
	}
	return n, from, via, err
}

func (u *udpConn) send(b []byte, to net.Addr, via net.IP) error {
	if u.p4 == nil || via == nil {
		_, err := u.pc.WriteTo(b, to)
		return err
	}
	_, err := u.p4.WriteTo(b, &ipv4.ControlMessage{Src: via}, to)
	return err
}

// ServeUDP answers BINDs on pc until ctx ends, and uses pc to send punch
// requests. It closes pc. On an IPv4 socket bound to a wildcard address,
// answers leave from the address each packet came to.
func (s *Server) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	udp := newUDPConn(pc)
	s.udpMu.Lock()
	s.udp = udp
	s.udpMu.Unlock()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	defer func() {
		s.udpMu.Lock()
		s.udp = nil
		s.udpMu.Unlock()
		pc.Close()
	}()
	buf := make([]byte, 2048)
	for {
		n, from, via, err := udp.read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if n == 0 || buf[0] != TypeBind {
			continue // not for us; never answer strangers
		}
		b, err := ParseBind(buf[:n])
		if err != nil || !s.fresh(ctx, b) {
			continue
		}
		rec := sudphBinding{Addr: from.String()}
		if via != nil {
			rec.Via = via.String()
		}
		raw, _ := json.Marshal(rec)
		err = store.Put(ctx, s.store, sudphPrefix+b.PK.Hex(), raw, BindTTL)
		if err != nil {
			continue
		}
		udp.send(EncodeBound(b.Nonce, rec.Addr), from, via)
	}
}

// fresh accepts a BIND once, within MaxClockSkew of now: once in this
// process, and once among all the resolvers sharing the store if it is
// shared (a BIND replayed to another resolver would record the replayer's
// address).
func (s *Server) fresh(ctx context.Context, b Bind) bool {
	now := s.now()
	if d := now.Sub(b.Time); d > MaxClockSkew || d < -MaxClockSkew {
		return false
	}
	if s.seen.Add(b.Nonce, now) != nil {
		return false
	}
	if f, ok := s.store.(store.Firster); ok {
		first, err := f.First(ctx, "bind/"+hex.EncodeToString(b.Nonce[:]), 2*MaxClockSkew)
		return err == nil && first
	}
	return true
}
