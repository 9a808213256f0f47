package vpn

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// frameWriter writes whole frames to a connection from several
// goroutines.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (fw *frameWriter) write(kind byte, body []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return writeFrame(fw.w, kind, body)
}

// Batching of the TUN → connection direction.
const (
	batchFrames = 64        // packets read ahead of the writer
	batchBytes  = 512 << 10 // at most this much in one write
)

// counters are a tunnel's bytes each way.
type counters struct {
	up, down atomic.Uint64 // from the TUN to the connection, and back
}

// pump moves packets between the connection and the TUN until either
// fails or ctx ends. Probes are answered; answers go to onAnswer. It
// closes neither.
func pump(ctx context.Context, c net.Conn, r *bufio.Reader, dev tun, onAnswer func([]byte), fw *frameWriter, n *counters) error {
	if fw == nil {
		fw = &frameWriter{w: c}
	}
	if n == nil {
		n = &counters{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	errc := make(chan error, 3)
	// TUN → connection: a reader takes packets off the device into
	// buffers; the writer sends every frame queued by then in one write, so
	// a stream of small packets costs one write per batch, not per packet.
	bufs := make(chan []byte, batchFrames)
	free := make(chan []byte, batchFrames)
	for range batchFrames {
		free <- make([]byte, headerLen+MaxFrame)
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
			k, err := dev.Read(buf[headerLen:])
			if err != nil {
				errc <- err
				return
			}
			binary.BigEndian.PutUint32(buf[:4], uint32(k+1))
			buf[4] = KindPacket
			bufs <- buf[:headerLen+k]
		}
	}()
	go func() {
		batch := make([]byte, 0, batchBytes)
		for buf := range bufs {
			batch = append(batch[:0], buf...)
			n.up.Add(uint64(len(buf) - headerLen))
			free <- buf[:cap(buf)]
		more:
			for len(batch) < batchBytes-headerLen-MaxFrame {
				select {
				case buf, ok := <-bufs:
					if !ok {
						break more
					}
					batch = append(batch, buf...)
					n.up.Add(uint64(len(buf) - headerLen))
					free <- buf[:cap(buf)]
				default:
					break more
				}
			}
			fw.mu.Lock()
			_, err := fw.w.Write(batch)
			fw.mu.Unlock()
			if err != nil {
				errc <- err
				for range bufs { // let the reader end
				}
				return
			}
		}
	}()
	go func() { // connection → TUN
		buf := make([]byte, MaxFrame)
		for {
			kind, body, err := readFrame(r, buf)
			if err != nil {
				errc <- err
				return
			}
			switch kind {
			case KindPacket: // a malformed packet (EINVAL) is dropped, not fatal
				if _, err := dev.Write(body); err != nil && !errors.Is(err, syscall.EINVAL) {
					errc <- err
					return
				}
				n.down.Add(uint64(len(body)))
			case KindProbe:
				if err := fw.write(KindAnswer, body); err != nil {
					errc <- err
					return
				}
			case KindAnswer:
				if onAnswer != nil {
					onAnswer(body)
				}
			}
		}
	}()
	err := <-errc
	cancel()
	c.Close() // ends the reader; the TUN reader ends when the device closes
	return err
}
