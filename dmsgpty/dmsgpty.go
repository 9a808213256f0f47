// Package dmsgpty is skywire's remote shell: a visor (the host) runs a
// shell or one command for a peer it allows, on a pseudo-terminal or on
// pipes, and relays its input and output over one reliable, authenticated
// stream. The stream is a dmsg stream to port 22 (Noise KK end to end, so
// the host knows the caller's key), the admin API's POST /v1/pty upgraded
// (the local CLI, or a hypervisor over its link), or anything else that
// carries bytes both ways.
//
// Message flow (docs/protocol.md, "Remote shell"):
//
//	client → host   OPEN    ver(1) ‖ JSON Request
//	host → client   ACCEPT  JSON Accepted          or REFUSE utf-8 reason, then the host closes
//	client → host   STDIN data · RESIZE rows(2) cols(2) · EOF · SIGNAL name
//	host → client   STDOUT data · STDERR data (pipes only) · EXIT code(4, signed) ‖ utf-8 reason
//
// Every message is a frame: type(1) ‖ length(2, big endian) ‖ payload, at
// most MaxPayload bytes. EXIT is the host's last frame; closing the stream
// from either side ends the session and the host kills what it started.
package dmsgpty

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the protocol version sent in OPEN.
const Version = 1

// MaxPayload bounds a frame's payload; a longer length is a protocol error.
const MaxPayload = 32 << 10

// Frame types.
const (
	frameOpen   byte = 1 // client: ver ‖ JSON Request
	frameAccept byte = 2 // host: JSON Accepted
	frameRefuse byte = 3 // host: reason; the host then closes
	frameStdin  byte = 4 // client: bytes for the program's input
	frameStdout byte = 5 // host: the program's output (the terminal's, with a pty)
	frameStderr byte = 6 // host: the program's error output (pipes only)
	frameResize byte = 7 // client: rows(2) ‖ cols(2)
	frameEOF    byte = 8 // client: no more input (the program's stdin is closed)
	frameSignal byte = 9 // client: a signal name for the program (INT, TERM, HUP, KILL, QUIT)
	frameExit   byte = 10
)

// Modes of a Request.
const (
	ModeShell = "shell" // the host's shell, as a login shell, on a pty
	ModeExec  = "exec"  // Argv, on a pty if TTY, else on pipes
)

// Request is what a client asks for (OPEN's JSON).
type Request struct {
	Mode string   `json:"mode"`
	Argv []string `json:"argv,omitempty"` // exec: the program and its arguments (not run through a shell)
	TTY  bool     `json:"tty,omitempty"`  // exec: on a pty (a shell always is)
	Term string   `json:"term,omitempty"` // TERM for a pty ("xterm-256color" if empty)
	Rows uint16   `json:"rows,omitempty"` // the pty's first size (24×80 if zero)
	Cols uint16   `json:"cols,omitempty"`
}

// Accepted is ACCEPT's JSON: what the host started.
type Accepted struct {
	Session string `json:"session"` // the host's id for the session, as in its log
	Shell   string `json:"shell,omitempty"`
	TTY     bool   `json:"tty"`
}

// Signals a client may send.
var Signals = []string{"INT", "TERM", "HUP", "KILL", "QUIT"}

// ErrProtocol is wrapped by errors about a malformed stream.
var ErrProtocol = errors.New("dmsgpty: protocol error")

// RefusedError is a host's refusal, with its reason.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return "refused: " + e.Reason }

// writeFrame writes one frame. Callers serialise writes on a stream.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	buf, err := appendFrame(nil, typ, payload)
	if err != nil {
		return err
	}
	_, err = w.Write(buf)
	return err
}

// appendFrame appends one frame to buf: the frame goes out in one write.
func appendFrame(buf []byte, typ byte, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return buf, fmt.Errorf("%w: a %d-byte frame is over %d", ErrProtocol, len(payload), MaxPayload)
	}
	buf = append(buf, typ, byte(len(payload)>>8), byte(len(payload)))
	return append(buf, payload...), nil
}

// writeChunks sends p as frames of at most MaxPayload bytes through send
// (an io.Writer's Write over frames).
func writeChunks(p []byte, send func(chunk []byte) error) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), MaxPayload)
		if err := send(p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

// frameReader reads frames into one reused buffer: a payload is valid
// until the next read.
type frameReader struct {
	r   io.Reader
	hdr [3]byte
	buf []byte
}

func newFrameReader(r io.Reader) *frameReader {
	return &frameReader{r: r, buf: make([]byte, MaxPayload)}
}

func (f *frameReader) next() (byte, []byte, error) {
	if _, err := io.ReadFull(f.r, f.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(f.hdr[1:3]))
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("%w: a %d-byte frame is over %d", ErrProtocol, n, MaxPayload)
	}
	if _, err := io.ReadFull(f.r, f.buf[:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return f.hdr[0], f.buf[:n], nil
}

// exitPayload is EXIT's payload.
func exitPayload(code int, reason string) []byte {
	b := make([]byte, 4, 4+len(reason))
	binary.BigEndian.PutUint32(b, uint32(int32(code)))
	if len(reason) > MaxPayload-4 {
		reason = reason[:MaxPayload-4]
	}
	return append(b, reason...)
}

func parseExit(p []byte) (int, string, error) {
	if len(p) < 4 {
		return 0, "", fmt.Errorf("%w: EXIT of %d bytes", ErrProtocol, len(p))
	}
	return int(int32(binary.BigEndian.Uint32(p))), string(p[4:]), nil
}

func resizePayload(rows, cols uint16) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:2], rows)
	binary.BigEndian.PutUint16(b[2:4], cols)
	return b[:]
}

func parseResize(p []byte) (rows, cols uint16, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("%w: RESIZE of %d bytes", ErrProtocol, len(p))
	}
	return binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4]), nil
}
