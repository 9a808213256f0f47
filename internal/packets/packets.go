// Package packets carries a packet device's packets (a TUN's IP packets) on
// a byte stream, length-framed:
//
//	u32 length (big endian) | u8 kind | body (length-1 bytes)
//
// Kind 0 is a packet for the device; every other kind belongs to whoever
// speaks over the stream (the VPN's probes, answers and handshake). Pump
// moves packets between a device and a stream, in batches, with no
// allocation or goroutine per packet. A visor runs it for an app that has
// joined its device to a connection (internal/appproto, "packet join");
// an app that cannot join runs it itself.
package packets

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// Frame kinds this package knows. KindStats and KindEnd exist only on a
// packet join's control channel (app ↔ its visor), never on a route.
const (
	KindPacket byte = 0
	// KindStats: from the app, empty, asks for the relay's counters; from
	// the visor, 16 bytes: packet bytes device → stream, stream → device.
	KindStats byte = 0xfe
	// KindEnd: the visor's last frame on a control channel, the reason
	// the relay ended in words (empty: the route ended cleanly).
	KindEnd byte = 0xff
)

// MaxBody bounds a frame's body: an IP packet of up to 64 KiB (a
// segmentation-offload packet) with its virtio-net header, and room.
const MaxBody = 1 << 17

// HeaderLen is a frame's header: u32 length, u8 kind.
const HeaderLen = 5

// Batching of the device → stream direction.
const (
	batchFrames = 64        // packets read ahead of the writer
	batchBytes  = 512 << 10 // at most this much in one write
)

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind byte, body []byte) error {
	if len(body) > MaxBody {
		return fmt.Errorf("packets: a frame of %d bytes: at most %d", len(body), MaxBody)
	}
	var hdr [HeaderLen]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(body)+1))
	hdr[4] = kind
	if len(body) <= 256 { // one write: a frame is never split by another writer's
		var b [HeaderLen + 256]byte
		copy(b[:], hdr[:])
		copy(b[HeaderLen:], body)
		_, err := w.Write(b[:HeaderLen+len(body)])
		return err
	}
	_, err := (&net.Buffers{hdr[:], body}).WriteTo(w)
	return err
}

// ReadFrame reads one frame into buf (which must hold MaxBody bytes) and
// returns its kind and body. It reads exactly the frame: r may be a stream
// that is handed on after it (a handshake before a join).
func ReadFrame(r io.Reader, buf []byte) (byte, []byte, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	if n == 0 || n-1 > MaxBody {
		return 0, nil, fmt.Errorf("packets: a frame of length %d", n)
	}
	body := buf[:n-1]
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return hdr[4], body, nil
}

// Writer writes whole frames to a stream from several goroutines.
type Writer struct {
	mu sync.Mutex
	W  io.Writer
}

// Write writes one frame.
func (fw *Writer) Write(kind byte, body []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return WriteFrame(fw.W, kind, body)
}

// Counters are a pump's packet bytes each way.
type Counters struct {
	Up, Down atomic.Uint64 // device → stream, stream → device
}

// Stats encodes the counters as a KindStats body.
func (n *Counters) Stats() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, n.Up.Load())
	binary.BigEndian.PutUint64(b[8:], n.Down.Load())
	return b
}

// ParseStats decodes a KindStats body.
func ParseStats(b []byte) (up, down uint64, ok bool) {
	if len(b) != 16 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), true
}

// Pump moves packets between dev and the stream c (read through r, written
// through fw) until either fails or ctx ends. Frames of other kinds go to
// other (an error from it ends the pump). It closes c, not dev: the
// caller closes dev, which ends its reader.
func Pump(ctx context.Context, c net.Conn, r io.Reader, dev io.ReadWriter, other func(kind byte, body []byte) error, fw *Writer, n *Counters) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	errc := make(chan error, 3)
	// Device → stream: a reader takes packets off the device into
	// buffers; the writer sends every frame queued by then in one write,
	// so a stream of small packets costs one write per batch, not per
	// packet.
	bufs := make(chan []byte, batchFrames)
	free := make(chan []byte, batchFrames)
	for range batchFrames {
		free <- make([]byte, HeaderLen+MaxBody)
	}
	go func() {
		defer close(bufs)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-ctx.Done():
				return
			}
			k, err := dev.Read(buf[HeaderLen:])
			if err != nil {
				errc <- fmt.Errorf("reading the device: %w", err)
				return
			}
			binary.BigEndian.PutUint32(buf[:4], uint32(k+1))
			buf[4] = KindPacket
			bufs <- buf[:HeaderLen+k]
		}
	}()
	go func() {
		batch := make([]byte, 0, batchBytes)
		for buf := range bufs {
			n.Up.Add(uint64(len(buf) - HeaderLen))
			var next []byte
			select {
			case next = <-bufs:
			default:
			}
			if next == nil { // one frame (a 64 KiB segment, or a lull): no copy
				fw.mu.Lock()
				_, err := fw.W.Write(buf)
				fw.mu.Unlock()
				free <- buf[:cap(buf)]
				if err != nil {
					errc <- err
					for range bufs { // let the reader end
					}
					return
				}
				continue
			}
			batch = append(append(batch[:0], buf...), next...)
			n.Up.Add(uint64(len(next) - HeaderLen))
			free <- buf[:cap(buf)]
			free <- next[:cap(next)]
		more:
			for len(batch) < batchBytes-HeaderLen-MaxBody {
				select {
				case buf, ok := <-bufs:
					if !ok {
						break more
					}
					batch = append(batch, buf...)
					n.Up.Add(uint64(len(buf) - HeaderLen))
					free <- buf[:cap(buf)]
				default:
					break more
				}
			}
			fw.mu.Lock()
			_, err := fw.W.Write(batch)
			fw.mu.Unlock()
			if err != nil {
				errc <- err
				for range bufs { // let the reader end
				}
				return
			}
		}
	}()
	go func() { // stream → device
		buf := make([]byte, MaxBody)
		for {
			kind, body, err := ReadFrame(r, buf)
			if err != nil {
				errc <- err
				return
			}
			if kind != KindPacket {
				if err := other(kind, body); err != nil {
					errc <- err
					return
				}
				continue
			}
			// A malformed packet (EINVAL) is dropped, not fatal.
			if _, err := dev.Write(body); err != nil && !errors.Is(err, syscall.EINVAL) {
				errc <- fmt.Errorf("writing the device: %w", err)
				return
			}
			n.Down.Add(uint64(len(body)))
		}
	}()
	err := <-errc
	cancel()
	c.Close() // ends the stream reader; the device reader ends when dev closes
	return err
}
