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

// frameBuf holds one frame; batchPool's buffers, a batch of them.
type frameBuf struct{ b [HeaderLen + MaxBody]byte }

var (
	framePool = sync.Pool{New: func() any { return new(frameBuf) }}
	batchPool = sync.Pool{New: func() any { b := make([]byte, 0, batchBytes); return &b }}
)

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
	kind, n, err := readHeader(r)
	if err != nil {
		return 0, nil, err
	}
	body := buf[:n]
	if err := readBody(r, body); err != nil {
		return 0, nil, err
	}
	return kind, body, nil
}

// ReadNewFrame reads one frame into a new buffer of its size: for streams
// of rare frames (a join's control channel), where holding MaxBody for
// each would cost more.
func ReadNewFrame(r io.Reader) (byte, []byte, error) {
	kind, n, err := readHeader(r)
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, n)
	if err := readBody(r, body); err != nil {
		return 0, nil, err
	}
	return kind, body, nil
}

// readHeader reads a frame's header: its kind and body length.
func readHeader(r io.Reader) (byte, int, error) {
	var hdr [HeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	if n == 0 || n-1 > MaxBody {
		return 0, 0, fmt.Errorf("packets: a frame of length %d", n)
	}
	return hdr[4], n - 1, nil
}

// readBody reads a frame's body: an end of stream there is an error.
func readBody(r io.Reader, body []byte) error {
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
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
	// Device → stream: a reader takes packets off the device, at most
	// batchFrames ahead of the writer, which sends every frame queued by
	// then in one write: a stream of small packets costs one write per
	// batch, not per packet. Buffers come from process-wide pools, so an
	// idle pump holds one (the one its device read waits with).
	type queued struct {
		fb *frameBuf
		n  int
	}
	bufs := make(chan queued, batchFrames)
	slots := make(chan struct{}, batchFrames)
	for range batchFrames {
		slots <- struct{}{}
	}
	done := func(q queued) {
		n.Up.Add(uint64(q.n - HeaderLen))
		framePool.Put(q.fb)
		slots <- struct{}{}
	}
	go func() {
		defer close(bufs)
		for {
			select {
			case <-slots:
			case <-ctx.Done():
				return
			}
			fb := framePool.Get().(*frameBuf)
			k, err := dev.Read(fb.b[HeaderLen:])
			if err != nil {
				framePool.Put(fb)
				errc <- fmt.Errorf("reading the device: %w", err)
				return
			}
			binary.BigEndian.PutUint32(fb.b[:4], uint32(k+1))
			fb.b[4] = KindPacket
			bufs <- queued{fb, HeaderLen + k}
		}
	}()
	go func() {
		fail := func(err error) {
			errc <- err
			for q := range bufs { // let the reader end
				framePool.Put(q.fb)
			}
		}
		for q := range bufs {
			var next queued
			select {
			case next = <-bufs:
			default:
			}
			if next.fb == nil { // one frame (a 64 KiB segment, or a lull): no copy
				fw.mu.Lock()
				_, err := fw.W.Write(q.fb.b[:q.n])
				fw.mu.Unlock()
				done(q)
				if err != nil {
					fail(err)
					return
				}
				continue
			}
			bp := batchPool.Get().(*[]byte)
			batch := append(append((*bp)[:0], q.fb.b[:q.n]...), next.fb.b[:next.n]...)
			done(q)
			done(next)
		more:
			for len(batch) < batchBytes-HeaderLen-MaxBody {
				select {
				case q, ok := <-bufs:
					if !ok {
						break more
					}
					batch = append(batch, q.fb.b[:q.n]...)
					done(q)
				default:
					break more
				}
			}
			fw.mu.Lock()
			_, err := fw.W.Write(batch)
			fw.mu.Unlock()
			*bp = batch
			batchPool.Put(bp)
			if err != nil {
				fail(err)
				return
			}
		}
	}()
	go func() { // stream → device
		for {
			kind, size, err := readHeader(r)
			if err != nil {
				errc <- err
				return
			}
			fb := framePool.Get().(*frameBuf)
			body := fb.b[:size]
			if err := readBody(r, body); err != nil {
				framePool.Put(fb)
				errc <- err
				return
			}
			if kind != KindPacket {
				err = other(kind, body)
			} else if _, err = dev.Write(body); err != nil && errors.Is(err, syscall.EINVAL) {
				err = nil // a malformed packet is dropped, not fatal
			} else if err != nil {
				err = fmt.Errorf("writing the device: %w", err)
			} else {
				n.Down.Add(uint64(size))
			}
			framePool.Put(fb)
			if err != nil {
				errc <- err
				return
			}
		}
	}()
	err := <-errc
	cancel()
	c.Close() // ends the stream reader; the device reader ends when dev closes
	return err
}
