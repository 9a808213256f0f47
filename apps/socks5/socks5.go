// Package socks5 is the part of SOCKS5 (RFC 1928) and its username and
// password authentication (RFC 1929) that skysocks speaks: the CONNECT
// command, with no authentication or with a passcode.
//
// Message flow (client → server, then server → client):
//
//	greeting   VER=5 | NMETHODS | METHODS…            → VER=5 | METHOD (0xff: none acceptable)
//	auth (if METHOD=2)
//	           VER=1 | ULEN | USER | PLEN | PASS      → VER=1 | STATUS (0: success)
//	request    VER=5 | CMD | RSV=0 | ATYP | ADDR | PORT
//	                                                  → VER=5 | REP | RSV=0 | ATYP | ADDR | PORT
//
// ATYP is 1 (4-byte IPv4), 3 (a length byte, then a domain name) or 4 (16-byte
// IPv6); PORT is big-endian. After a REP of 0 the connection carries the
// target's bytes. Client writes these three messages in one go (a server
// reads them in order), so a handshake costs one round trip, not three.
package socks5

import (
	"bufio"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
)

// Protocol constants.
const (
	Version     = 5
	authVersion = 1

	MethodNone         = 0x00
	MethodUserPass     = 0x02
	MethodNoAcceptable = 0xff

	CmdConnect = 1

	atypIPv4   = 1
	atypDomain = 3
	atypIPv6   = 4
)

// Reply codes (REP).
const (
	Succeeded            = 0
	GeneralFailure       = 1
	NotAllowed           = 2
	NetworkUnreachable   = 3
	HostUnreachable      = 4
	ConnectionRefused    = 5
	TTLExpired           = 6
	CommandNotSupported  = 7
	AddrTypeNotSupported = 8
)

var replyText = map[byte]string{
	GeneralFailure:       "general failure",
	NotAllowed:           "not allowed by the proxy's rules",
	NetworkUnreachable:   "network unreachable",
	HostUnreachable:      "host unreachable",
	ConnectionRefused:    "connection refused",
	TTLExpired:           "timed out",
	CommandNotSupported:  "command not supported",
	AddrTypeNotSupported: "address type not supported",
}

// Errors.
var (
	// ErrAuth: the passcode was wrong or missing.
	ErrAuth = errors.New("socks5: authentication failed (wrong or missing passcode)")
	// ErrProtocol: the peer does not speak SOCKS5 as this package does.
	ErrProtocol = errors.New("socks5: protocol error")
)

// ReplyError is a request the server refused, with its reply code.
type ReplyError struct{ Code byte }

func (e ReplyError) Error() string {
	if t, ok := replyText[e.Code]; ok {
		return "socks5: " + t
	}
	return "socks5: refused with code " + strconv.Itoa(int(e.Code))
}

// Request is a CONNECT request's target: an IP literal or a domain name,
// and a port.
type Request struct {
	Host string
	Port uint16
}

// Addr is host:port, for net.Dial.
func (r Request) Addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port))) }

// appendAddr appends ATYP | ADDR | PORT.
func appendAddr(b []byte, host string, port uint16) ([]byte, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() || ip.Is4In6() {
			a := ip.Unmap().As4()
			b = append(append(b, atypIPv4), a[:]...)
		} else {
			a := ip.As16()
			b = append(append(b, atypIPv6), a[:]...)
		}
	} else {
		if len(host) == 0 || len(host) > 255 {
			return nil, fmt.Errorf("%w: host name of %d bytes", ErrProtocol, len(host))
		}
		b = append(append(b, atypDomain, byte(len(host))), host...)
	}
	return binary.BigEndian.AppendUint16(b, port), nil
}

// readAddr reads ATYP | ADDR | PORT.
func readAddr(r io.Reader) (Request, byte, error) {
	var buf [256]byte
	if _, err := io.ReadFull(r, buf[:1]); err != nil {
		return Request{}, 0, err
	}
	var host string
	switch atyp := buf[0]; atyp {
	case atypIPv4, atypIPv6:
		n := 4
		if atyp == atypIPv6 {
			n = 16
		}
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return Request{}, 0, err
		}
		ip, _ := netip.AddrFromSlice(buf[:n])
		host = ip.String()
	case atypDomain:
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return Request{}, 0, err
		}
		n := int(buf[0])
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return Request{}, 0, err
		}
		if n == 0 {
			return Request{}, GeneralFailure, fmt.Errorf("%w: empty host name", ErrProtocol)
		}
		host = string(buf[:n])
	default:
		return Request{}, AddrTypeNotSupported, fmt.Errorf("%w: address type %d", ErrProtocol, atyp)
	}
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return Request{}, 0, err
	}
	return Request{Host: host, Port: binary.BigEndian.Uint16(buf[:2])}, 0, nil
}

// ServerHandshake answers a client on rw: method selection, the passcode
// (when passcode is not empty: RFC 1929 with the passcode as either the
// user name or the password, as Skywire accepts it), and the request, which
// it returns. On a refused request it has written the reply already; on
// success the caller dials and answers with WriteReply.
func ServerHandshake(br *bufio.Reader, w io.Writer, passcode string) (Request, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return Request{}, err
	}
	if hdr[0] != Version {
		return Request{}, fmt.Errorf("%w: version %d", ErrProtocol, hdr[0])
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return Request{}, err
	}
	offered := func(m byte) bool { return bytesContain(methods, m) }
	method := byte(MethodNoAcceptable)
	switch {
	case passcode != "" && offered(MethodUserPass):
		method = MethodUserPass
	case passcode == "" && offered(MethodNone):
		method = MethodNone
	case passcode == "" && offered(MethodUserPass): // any credentials will do
		method = MethodUserPass
	}
	if _, err := w.Write([]byte{Version, method}); err != nil {
		return Request{}, err
	}
	if method == MethodNoAcceptable {
		if passcode != "" {
			return Request{}, ErrAuth
		}
		return Request{}, fmt.Errorf("%w: no acceptable authentication method offered", ErrProtocol)
	}
	if method == MethodUserPass {
		user, pass, err := readUserPass(br)
		if err != nil {
			return Request{}, err
		}
		ok := passcode == "" || equal(user, passcode) || equal(pass, passcode)
		status := byte(0)
		if !ok {
			status = 1
		}
		if _, err := w.Write([]byte{authVersion, status}); err != nil {
			return Request{}, err
		}
		if !ok {
			return Request{}, ErrAuth
		}
	}
	var req [3]byte
	if _, err := io.ReadFull(br, req[:]); err != nil {
		return Request{}, err
	}
	if req[0] != Version {
		return Request{}, fmt.Errorf("%w: request version %d", ErrProtocol, req[0])
	}
	r, code, err := readAddr(br)
	if err == nil && req[1] != CmdConnect {
		code, err = CommandNotSupported, fmt.Errorf("%w: command %d (only CONNECT)", ErrProtocol, req[1])
	}
	if err != nil {
		if code != 0 {
			WriteReply(w, code, Request{})
		}
		return Request{}, err
	}
	return r, nil
}

func readUserPass(r io.Reader) (user, pass string, err error) {
	var b [256]byte
	if _, err := io.ReadFull(r, b[:2]); err != nil {
		return "", "", err
	}
	if b[0] != authVersion {
		return "", "", fmt.Errorf("%w: authentication version %d", ErrProtocol, b[0])
	}
	field := func(n int) (string, error) {
		if _, err := io.ReadFull(r, b[:n]); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	if user, err = field(int(b[1])); err != nil {
		return "", "", err
	}
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		return "", "", err
	}
	pass, err = field(int(b[0]))
	return user, pass, err
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func bytesContain(b []byte, c byte) bool {
	for _, x := range b {
		if x == c {
			return true
		}
	}
	return false
}

// BoundAddr is a TCP address as a reply's bound address (0.0.0.0:0 for
// anything else).
func BoundAddr(a net.Addr) Request {
	if ta, ok := a.(*net.TCPAddr); ok {
		return Request{Host: ta.IP.String(), Port: uint16(ta.Port)}
	}
	return Request{Host: "0.0.0.0"}
}

// WriteReply answers a request with code and the bound address.
func WriteReply(w io.Writer, code byte, bound Request) error {
	if bound.Host == "" {
		bound.Host = "0.0.0.0"
	}
	b, err := appendAddr([]byte{Version, code, 0}, bound.Host, bound.Port)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// ReplyCode picks the reply code for a failed dial.
func ReplyCode(err error) byte {
	var re ReplyError
	var ne net.Error
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &re):
		return re.Code
	case errors.Is(err, syscall.ECONNREFUSED):
		return ConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return NetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.As(err, &dnsErr):
		return HostUnreachable
	case errors.As(err, &ne) && ne.Timeout():
		return TTLExpired
	}
	return GeneralFailure
}

// ClientHandshake asks a server on rw to connect to req: greeting,
// passcode (if any) and request in one write, then the server's answers.
// It returns the bound address the server reported; a refusal is a
// ReplyError, a wrong passcode ErrAuth.
func ClientHandshake(br *bufio.Reader, w io.Writer, passcode string, req Request) (Request, error) {
	method := byte(MethodNone)
	msg := []byte{Version, 1, MethodNone}
	if passcode != "" {
		if len(passcode) > 255 {
			return Request{}, fmt.Errorf("%w: passcode longer than 255 bytes", ErrProtocol)
		}
		method = MethodUserPass
		msg = []byte{Version, 1, MethodUserPass, authVersion, byte(len(passcode))}
		msg = append(msg, passcode...)
		msg = append(msg, byte(len(passcode)))
		msg = append(msg, passcode...)
	}
	msg = append(msg, Version, CmdConnect, 0)
	msg, err := appendAddr(msg, req.Host, req.Port)
	if err != nil {
		return Request{}, err
	}
	if _, err := w.Write(msg); err != nil {
		return Request{}, err
	}
	var b [3]byte
	if _, err := io.ReadFull(br, b[:2]); err != nil {
		return Request{}, err
	}
	switch {
	case b[0] != Version:
		return Request{}, fmt.Errorf("%w: version %d", ErrProtocol, b[0])
	case b[1] == MethodNoAcceptable && passcode == "":
		return Request{}, fmt.Errorf("%w (the server wants a passcode)", ErrAuth)
	case b[1] == MethodNoAcceptable:
		return Request{}, ErrAuth
	case b[1] != method:
		return Request{}, fmt.Errorf("%w: server chose method %d", ErrProtocol, b[1])
	}
	if method == MethodUserPass {
		if _, err := io.ReadFull(br, b[:2]); err != nil {
			return Request{}, err
		}
		if b[1] != 0 {
			return Request{}, ErrAuth
		}
	}
	if _, err := io.ReadFull(br, b[:3]); err != nil {
		return Request{}, err
	}
	if b[0] != Version {
		return Request{}, fmt.Errorf("%w: reply version %d", ErrProtocol, b[0])
	}
	bound, _, err := readAddr(br)
	if err != nil {
		return Request{}, err
	}
	if b[1] != Succeeded {
		return Request{}, ReplyError{Code: b[1]}
	}
	return bound, nil
}
