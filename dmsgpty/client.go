package dmsgpty

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// OpenTimeout bounds how long Open waits for the host's answer.
const OpenTimeout = 15 * time.Second

// Session is the client's end of a session the host accepted. Its send
// methods may be called from any goroutine; Recv from one.
type Session struct {
	Accepted Accepted

	conn io.ReadWriteCloser
	wmu  sync.Mutex // serialises frames on conn
	fr   *frameReader
}

// deadliner is a stream whose reads can time out (every net.Conn).
type deadliner interface{ SetReadDeadline(time.Time) error }

// Open asks the host at the other end of conn for req. A refusal is a
// *RefusedError. On any error conn is closed.
func Open(conn io.ReadWriteCloser, req Request) (*Session, error) {
	if req.Mode != ModeShell && req.Mode != ModeExec {
		conn.Close()
		return nil, fmt.Errorf("dmsgpty: unknown mode %q", req.Mode)
	}
	js, err := json.Marshal(req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	s := &Session{conn: conn, fr: newFrameReader(conn)}
	if err := writeFrame(conn, frameOpen, append([]byte{Version}, js...)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("dmsgpty: sending the request: %w", err)
	}
	if d, ok := conn.(deadliner); ok {
		d.SetReadDeadline(time.Now().Add(OpenTimeout))
		defer d.SetReadDeadline(time.Time{})
	}
	typ, p, err := s.fr.next()
	if err != nil {
		conn.Close()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("dmsgpty: the host closed the stream without an answer")
		}
		return nil, fmt.Errorf("dmsgpty: waiting for the host's answer: %w", err)
	}
	switch typ {
	case frameAccept:
		if err := json.Unmarshal(p, &s.Accepted); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: ACCEPT: %v", ErrProtocol, err)
		}
		return s, nil
	case frameRefuse:
		conn.Close()
		return nil, &RefusedError{Reason: string(p)}
	}
	conn.Close()
	return nil, fmt.Errorf("%w: frame %d before ACCEPT", ErrProtocol, typ)
}

func (s *Session) send(typ byte, p []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return writeFrame(s.conn, typ, p)
}

// Write sends p as the program's input (in frames of at most MaxPayload).
func (s *Session) Write(p []byte) (int, error) {
	return writeChunks(p, func(c []byte) error { return s.send(frameStdin, c) })
}

// CloseInput closes the program's input (EOF).
func (s *Session) CloseInput() error { return s.send(frameEOF, nil) }

// Resize sets the pty's size.
func (s *Session) Resize(rows, cols uint16) error {
	return s.send(frameResize, resizePayload(rows, cols))
}

// Signal sends the program one of Signals.
func (s *Session) Signal(name string) error {
	if !slices.Contains(Signals, name) {
		return fmt.Errorf("dmsgpty: signal %q: want one of %v", name, Signals)
	}
	return s.send(frameSignal, []byte(name))
}

// Close ends the session: the host kills what it started.
func (s *Session) Close() error { return s.conn.Close() }

// Output is one piece of what the host sends.
type Output struct {
	Stderr bool   // Data is error output (pipes only)
	Data   []byte // valid until the next Recv
	Exited bool   // the program ended: Code and Reason say how; no more output
	Code   int    // its exit status (128+n if signal n ended it, -1 if unknown)
	Reason string // why the host ended it, if it did (idle, the visor stopping)
}

// Recv returns the next output. After an Exited output, or an error, the
// session is over.
func (s *Session) Recv() (Output, error) {
	for {
		typ, p, err := s.fr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Output{}, errors.New("dmsgpty: the stream ended before the program's exit status")
			}
			return Output{}, err
		}
		switch typ {
		case frameStdout:
			return Output{Data: p}, nil
		case frameStderr:
			return Output{Data: p, Stderr: true}, nil
		case frameExit:
			code, reason, err := parseExit(p)
			if err != nil {
				return Output{}, err
			}
			return Output{Exited: true, Code: code, Reason: reason}, nil
		default:
			return Output{}, fmt.Errorf("%w: unexpected frame %d from the host", ErrProtocol, typ)
		}
	}
}

// Copy writes the session's output to stdout and stderr until the program
// exits, and returns its status and the host's reason if it ended it.
func (s *Session) Copy(stdout, stderr io.Writer) (code int, reason string, err error) {
	for {
		out, err := s.Recv()
		if err != nil {
			return -1, "", err
		}
		if out.Exited {
			return out.Code, out.Reason, nil
		}
		w := stdout
		if out.Stderr {
			w = stderr
		}
		if _, err := w.Write(out.Data); err != nil {
			return -1, "", fmt.Errorf("writing the output: %w", err)
		}
	}
}
