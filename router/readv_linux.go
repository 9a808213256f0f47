package router

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/skyfleet/skywire/noise"
	"github.com/skyfleet/skywire/transport"
)

// readvPackets is how many packets' payloads one read system call fills
// when a route sends what a socket yields: fewer, larger reads cost fewer
// system calls and wake-ups per byte than one read per packet.
const readvPackets = 4

// readFromSocket is ReadFrom for a socket (ok false: r is not one). It
// reads with readv straight into up to readvPackets packets, as much as
// the route's credit allows, and sends them as they are filled. With nc
// (a route encrypted end to end) each packet carries one frame of nc,
// sealed in place around the bytes read: no copy of them in user space.
func (c *routeConn) readFromSocket(r io.Reader, nc *noise.Conn) (total int64, ok bool, err error) {
	sc, isSock := r.(syscall.Conn)
	if !isSock {
		return 0, false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	head, tag := 0, 0 // room for nc's frame around the bytes read
	if nc != nil {
		head, tag = noise.HeaderSize, noise.TagSize
	}
	var (
		bufs   [readvPackets]*pbuf
		iov    [readvPackets][]byte
		frames [readvPackets][]byte
		out    *link
		outID  uint32
	)
	// emit sends the filled packets (bufs[i] holds frames[i]).
	emit := func(fs [][]byte) error {
		for i, f := range fs {
			if err := c.send(out, outID, bufs[i], len(f)); err != nil {
				for _, b := range bufs[i+1 : len(fs)] {
					b.put()
				}
				return err
			}
		}
		return nil
	}
	var n, k int
	var rerr error
	readv := func(fd uintptr) bool {
		for {
			n, rerr = unix.Readv(int(fd), iov[:k])
			if rerr != unix.EINTR {
				return rerr != unix.EAGAIN
			}
		}
	}
	for {
		var avail int
		avail, out, outID, err = c.reserve(head+tag+1, readvPackets*transport.MaxPayload)
		if err != nil {
			return total, true, err
		}
		k, n, rerr = 0, 0, nil
		for left := avail; left > head+tag && k < readvPackets; k++ {
			m := min(left, transport.MaxPayload) - head - tag
			bufs[k] = getPbuf()
			iov[k] = bufs[k].b[transport.HeaderSize+head : transport.HeaderSize+head+m]
			left -= head + m + tag
		}
		if err := rc.Read(readv); err != nil {
			rerr = err // closed, or past the read deadline
		}
		n = max(n, 0)
		eof := n == 0 && rerr == nil
		got, used := 0, 0
		for i, b := range bufs[:k] {
			m := min(n, len(iov[i]))
			n -= m
			if m == 0 {
				b.put()
				continue
			}
			frames[got] = b.b[transport.HeaderSize : transport.HeaderSize+head+m+tag]
			bufs[got] = b
			got++
			used += head + m + tag
		}
		c.unreserve(avail - used)
		var serr error
		if got > 0 {
			if nc != nil {
				serr = nc.SealInPlace(frames[:got], emit)
			} else {
				serr = emit(frames[:got])
			}
			if serr == nil {
				total += int64(used - got*(head+tag))
			}
		}
		clear(bufs[:])
		clear(frames[:])
		switch {
		case serr != nil:
			return total, true, serr
		case rerr != nil:
			return total, true, rerr
		case eof:
			return total, true, nil
		}
	}
}
