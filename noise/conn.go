package noise

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

const (
	// readBufSize holds two full frames, so one read syscall usually brings
	// a whole frame and the start of the next.
	readBufSize = 2 * (HeaderSize + MaxFrame)
	// writeFrames is how many full frames one Write seals before one write
	// syscall.
	writeFrames  = 4
	writeBufSize = writeFrames * (HeaderSize + MaxFrame)
	// headSize is the first read of a Read with nothing buffered.
	headSize = 512
)

// Buffers are pooled: a Conn holds a read buffer only while it has unread
// bytes, and a write buffer only during Write, so idle sessions cost no
// buffer memory. A Read with nothing buffered waits in the Conn's small
// head array and takes a pooled buffer once bytes arrive: a Conn blocked
// in Read (every idle session has one) holds 512 bytes, not 128 KiB.
var (
	readPool  = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}
	writePool = sync.Pool{New: func() any { b := make([]byte, writeBufSize); return &b }}
)

// Conn is an encrypted session over a reliable byte stream. Read and Write
// may run concurrently with each other; Close unblocks both. A failed
// authentication or a broken frame closes the underlying connection.
type Conn struct {
	c             net.Conn
	local, remote cipher.PubKey

	rmu     sync.Mutex // guards the read side: recv, rbuf, rpos, rend, plain, clear, rerr, rframes, rbytes
	recv    *cipherState
	rbuf    *[]byte // from readPool while it holds bytes; rbuf[rpos:rend] is unconsumed input
	rpos    int
	rend    int
	plain   []byte         // decrypted and not yet returned; aliases *rbuf
	clear   int            // bytes of a split frame's clear part still to deliver
	rerr    error          // sticky
	rframes uint64         // frames since the last rekey
	rbytes  uint64         // ciphertext bytes since the last rekey
	strict  bool           // RequireCloseNotify
	head    [headSize]byte // where a Read with nothing buffered waits

	wmu     sync.Mutex // guards the write side: send, pending, werr, wframes, wbytes, wvec, wbufs
	send    *cipherState
	pending []byte // sealed frames a timed-out write left unsent: they go first
	werr    error  // sticky (ErrWriteClosed after CloseWrite)
	wframes uint64
	wbytes  uint64
	wvec    [][]byte    // WriteBatch's vector and the Buffers over it: fields,
	wbufs   net.Buffers // so that writing them does not allocate

	// Rekey thresholds: RekeyFrames and RekeyBytes (tests lower them).
	rekeyFrames, rekeyBytes uint64
	// maxPlain is the most plaintext Write puts in one frame.
	maxPlain int
}

func newConn(c net.Conn, send, recv *cipherState, local, remote cipher.PubKey) *Conn {
	return &Conn{c: c, send: send, recv: recv, local: local, remote: remote, rekeyFrames: RekeyFrames, rekeyBytes: RekeyBytes, maxPlain: MaxPlaintext}
}

// LocalPK is our static key.
func (c *Conn) LocalPK() cipher.PubKey { return c.local }

// RemotePK is the peer's authenticated static key.
func (c *Conn) RemotePK() cipher.PubKey { return c.remote }

// SetMaxPlaintext makes Write put at most n bytes of plaintext in a frame
// (so that frames fit a carrier's packets). Call it before the first Write.
func (c *Conn) SetMaxPlaintext(n int) {
	c.wmu.Lock()
	c.maxPlain = max(1, min(n, MaxPlaintext))
	c.wmu.Unlock()
}

// RequireCloseNotify makes the carrier's end of stream without a
// close-notify frame an error (io.ErrUnexpectedEOF) instead of io.EOF.
func (c *Conn) RequireCloseNotify() {
	c.rmu.Lock()
	c.strict = true
	c.rmu.Unlock()
}

// ErrWriteClosed: Write after CloseWrite.
var ErrWriteClosed = errors.New("noise: write after CloseWrite")

// CloseWrite sends close-notify (the peer reads io.EOF after everything
// written before it) and half-closes the carrier if it can. Reading goes on.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		if errors.Is(c.werr, ErrWriteClosed) {
			return nil
		}
		return c.werr
	}
	if err := c.flushPendingLocked(); err != nil {
		return err
	}
	var buf [HeaderSize + TagSize]byte
	nonce := c.send.n
	ct, err := c.send.seal(buf[HeaderSize:HeaderSize], nil, nil)
	if err != nil {
		c.werr = err
		c.c.Close()
		return err
	}
	binary.BigEndian.PutUint16(buf[:], uint16(len(ct)))
	if n, err := c.c.Write(buf[:]); err != nil {
		if n == 0 && isTimeout(err) {
			c.send.n = nonce // nothing sent: try again later
			return err
		}
		return c.writeFailedLocked(err)
	}
	c.werr = ErrWriteClosed
	if cw, ok := c.c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Cipher is the session's transport-phase cipher.
func (c *Conn) Cipher() Cipher { return c.send.kind }

// Read returns decrypted bytes. Frame boundaries are not preserved.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if len(c.plain) > 0 {
		n := copy(p, c.plain)
		c.plain = c.plain[n:]
		c.releaseReadLocked()
		return n, nil
	}
	if c.clear > 0 {
		return c.readClearLocked(p)
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	for c.rbuf == nil {
		n, err := c.c.Read(c.head[:])
		if n > 0 { // (an error with them comes again at the next read)
			c.rbuf = readPool.Get().(*[]byte)
			c.rpos, c.rend = 0, copy(*c.rbuf, c.head[:n])
			break
		}
		if err == nil {
			continue
		}
		if isTimeout(err) {
			return 0, err
		}
		if errors.Is(err, io.EOF) && c.strict {
			err = io.ErrUnexpectedEOF
		}
		c.rerr = err
		return 0, err
	}
	buf := *c.rbuf
	for {
		avail := c.rend - c.rpos
		need := HeaderSize
		if avail >= HeaderSize {
			size := int(binary.BigEndian.Uint16(buf[c.rpos:]))
			switch {
			case size == 0: // a split frame: its own length follows
				need = 2 * HeaderSize
				if avail < need {
					break
				}
				size = int(binary.BigEndian.Uint16(buf[c.rpos+HeaderSize:]))
				if size < TagSize+splitPrefix {
					return 0, c.failReadLocked(ErrFrame)
				}
				need += size
				if avail >= need {
					return c.openSplitLocked(p, buf[c.rpos+2*HeaderSize:c.rpos+need], need)
				}
			case size < TagSize:
				return 0, c.failReadLocked(ErrFrame)
			default:
				need = HeaderSize + size
				if avail >= need {
					return c.openLocked(p, buf[c.rpos+HeaderSize:c.rpos+need], need)
				}
			}
		}
		if c.rpos+need > len(buf) {
			copy(buf, buf[c.rpos:c.rend])
			c.rend -= c.rpos
			c.rpos = 0
		}
		n, err := c.c.Read(buf[c.rend:])
		c.rend += n
		if err == nil {
			continue
		}
		if n > 0 && c.rend-c.rpos >= need {
			continue // a frame is complete: deliver it before the error
		}
		if isTimeout(err) {
			return 0, err // the partial frame stays buffered
		}
		if errors.Is(err, io.EOF) && (c.rend > c.rpos || c.strict) {
			err = io.ErrUnexpectedEOF
		}
		c.rerr = err
		c.releaseReadLocked()
		return 0, err
	}
}

// openLocked decrypts the frame ct (consuming n buffered bytes), straight
// into p when it fits, else in place.
func (c *Conn) openLocked(p, ct []byte, n int) (int, error) {
	size := len(ct) - TagSize
	var out []byte
	var err error
	if len(p) >= size {
		out, err = c.recv.open(p[:0], ct, nil)
	} else {
		out, err = c.recv.open(ct[:0], ct, nil)
	}
	if err != nil {
		return 0, c.failReadLocked(ErrDecrypt)
	}
	c.rpos += n
	if size == 0 { // close-notify
		c.rerr = io.EOF
		c.releaseReadLocked()
		return 0, io.EOF
	}
	c.countReadLocked(len(ct))
	if len(p) >= size {
		c.releaseReadLocked()
		return len(out), nil
	}
	k := copy(p, out)
	c.plain = out[k:]
	return k, nil
}

func (c *Conn) countReadLocked(ctLen int) {
	c.rframes++
	c.rbytes += uint64(ctLen)
	if c.rframes >= c.rekeyFrames || c.rbytes >= c.rekeyBytes {
		c.recv.rekey()
		c.rframes, c.rbytes = 0, 0
	}
}

// openSplitLocked decrypts a split frame's sealed part ct in place
// (consuming n buffered bytes) and returns its bytes; its clear part is
// delivered next.
func (c *Conn) openSplitLocked(p, ct []byte, n int) (int, error) {
	out, err := c.recv.open(ct[:0], ct, splitAD)
	if err != nil {
		return 0, c.failReadLocked(ErrDecrypt)
	}
	clear := int(binary.BigEndian.Uint16(out))
	if clear == 0 {
		return 0, c.failReadLocked(ErrFrame)
	}
	c.rpos += n
	c.countReadLocked(len(ct))
	c.clear = clear
	k := copy(p, out[splitPrefix:])
	c.plain = out[splitPrefix+k:]
	if k == 0 {
		return c.readClearLocked(p)
	}
	return k, nil
}

// readClearLocked delivers a split frame's clear part: what is buffered,
// else straight from the carrier into p.
func (c *Conn) readClearLocked(p []byte) (int, error) {
	p = p[:min(len(p), c.clear)]
	if c.rbuf != nil && c.rend > c.rpos {
		k := copy(p, (*c.rbuf)[c.rpos:c.rend])
		c.rpos += k
		c.clear -= k
		c.releaseReadLocked()
		return k, nil
	}
	if c.rerr != nil {
		return 0, c.rerr
	}
	k, err := c.c.Read(p)
	c.clear -= k
	if err != nil && !isTimeout(err) {
		if errors.Is(err, io.EOF) && c.clear > 0 {
			err = io.ErrUnexpectedEOF
		}
		c.rerr = err
	}
	if k > 0 {
		return k, nil
	}
	return 0, err
}

func (c *Conn) failReadLocked(err error) error {
	c.rerr = err
	c.plain = nil
	c.releaseReadLocked()
	c.c.Close()
	return err
}

// releaseReadLocked returns the read buffer once nothing in it is pending.
func (c *Conn) releaseReadLocked() {
	if c.rbuf != nil && len(c.plain) == 0 && c.rpos == c.rend {
		readPool.Put(c.rbuf)
		c.rbuf = nil
	}
}

// Write encrypts p into frames of at most MaxPlaintext bytes and writes
// them, several per system call. After a timeout the Conn stays usable: what
// was sealed but not sent goes out first on the next Write (and counts as
// written now); a timeout before anything was sealed and sent writes
// nothing. Any other failure breaks the Conn.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.beginWriteLocked(); err != nil {
		return 0, err
	}
	bp := writePool.Get().(*[]byte)
	defer writePool.Put(bp)
	buf := *bp
	total := 0
	for len(p) > 0 {
		nonce, frames, bytes := c.send.n, c.wframes, c.wbytes
		rekeyed := false
		off, taken := 0, 0
		for len(p) > 0 && off+HeaderSize+TagSize < len(buf) {
			chunk := min(len(p), c.maxPlain, len(buf)-off-HeaderSize-TagSize)
			// Sealed straight from p into the frame: one pass, no copy.
			ct, err := c.send.seal(buf[off+HeaderSize:off+HeaderSize], p[:chunk], nil)
			if err != nil {
				c.werr = err
				c.c.Close()
				return total, err
			}
			binary.BigEndian.PutUint16(buf[off:], uint16(len(ct)))
			off += HeaderSize + len(ct)
			p = p[chunk:]
			taken += chunk
			rekeyed = c.countWriteLocked(len(ct)) || rekeyed
		}
		n, err := c.c.Write(buf[:off])
		if err != nil {
			if n == 0 && !rekeyed && isTimeout(err) {
				// Nothing left: forget these frames; the stream is intact.
				c.send.n, c.wframes, c.wbytes = nonce, frames, bytes
				return total, err
			}
			if isTimeout(err) {
				c.pending = append([]byte(nil), buf[n:off]...)
				return total + taken, err
			}
			return total, c.writeFailedLocked(err)
		}
		total += taken
	}
	return total, nil
}

// SealInPlace seals frames in place as the stream's next frames and hands
// them to emit, under the write lock, so that they take their place among
// other writes. Each frame holds its plaintext (at most the maximum
// plaintext) between HeaderSize bytes of room for the length and TagSize
// bytes of room for the tag; emit must put the frames on the underlying
// stream in order, where Write would have written them. It is for a
// carrier that can take sealed frames without a copy (a route's packets).
// An error from emit breaks the stream: later writes fail.
func (c *Conn) SealInPlace(frames [][]byte, emit func([][]byte) error) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.beginWriteLocked(); err != nil {
		return err
	}
	for _, f := range frames {
		if len(f) < HeaderSize+TagSize || len(f)-HeaderSize-TagSize > c.maxPlain {
			return fmt.Errorf("noise: a frame of %d bytes cannot hold a sealed frame of at most %d plaintext bytes", len(f), c.maxPlain)
		}
	}
	for _, f := range frames {
		pt := f[HeaderSize : len(f)-TagSize]
		ct, err := c.send.seal(pt[:0], pt, nil)
		if err != nil {
			c.werr = err
			c.c.Close()
			return err
		}
		binary.BigEndian.PutUint16(f, uint16(len(ct)))
		c.countWriteLocked(len(ct))
	}
	if err := emit(frames); err != nil {
		c.werr = err
		c.c.Close()
		return err
	}
	return nil
}

// countWriteLocked counts a sealed frame and rekeys when due (reporting
// whether it did).
func (c *Conn) countWriteLocked(ctLen int) bool {
	c.wframes++
	c.wbytes += uint64(ctLen)
	if c.wframes >= c.rekeyFrames || c.wbytes >= c.rekeyBytes {
		c.send.rekey()
		c.wframes, c.wbytes = 0, 0
		return true
	}
	return false
}

// Split frames.
const (
	// splitPrefix is the clear part's length at the head of a split
	// frame's plaintext.
	splitPrefix = 2
	// MaxSplitSealed is the most WriteSplit seals in one split frame.
	MaxSplitSealed = MaxPlaintext - splitPrefix
	// MaxSplitClear is the most WriteSplit sends in the clear after it.
	MaxSplitClear = 65535
)

// splitAD is a split frame's associated data: a frame sealed as one kind
// never opens as the other.
var splitAD = []byte("split")

// ErrSplit: WriteBatch was given a piece that does not fit its frame.
var ErrSplit = errors.New("noise: piece too large for one frame")

// Piece is one item of WriteBatch: Sealed is encrypted; Clear, if any,
// follows as it is.
type Piece struct{ Sealed, Clear []byte }

// WriteSplit writes sealed encrypted and then clear as it is, in one split
// frame (0 ‖ length ‖ AEAD(clear length ‖ sealed) ‖ clear); the reader sees
// the two as consecutive bytes of the stream. It is for bytes that are
// already encrypted and authenticated end to end, where a second encryption
// would protect nothing but would cost a pass over them: their length and
// position are authenticated, their content is not (a changed byte is caught
// by whoever holds the end-to-end keys). sealed takes at most MaxSplitSealed
// bytes, clear at most MaxSplitClear. Timeouts are as in Write.
func (c *Conn) WriteSplit(sealed, clear []byte) (int, error) {
	if len(clear) == 0 {
		return c.Write(sealed)
	}
	return c.WriteBatch([]Piece{{sealed, clear}})
}

// batchSealed is how many sealed bytes WriteBatch gathers before a system
// call: a full frame takes long enough to seal that the peer should start
// opening it, while split frames, whose sealed part is a header, go many to
// a call. (Routes over loopback, medians of 5: one packet per call 2.23 /
// 1.57 GB/s for 1 / 2 hops, this 2.46 / 1.91, no limit 2.25 / 1.94.)
const batchSealed = 64 << 10

// WriteBatch writes pieces in order, each as one frame: a whole frame of
// Sealed when there is no Clear (at most the frame's plaintext size), else a
// split frame as in WriteSplit. It writes them, with their clear parts, in
// as few system calls as it can (writev where the carrier is a TCP
// connection), each after about 64 KiB of sealed frames at most. Timeouts
// are as in Write.
func (c *Conn) WriteBatch(pieces []Piece) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	for _, p := range pieces {
		whole := len(p.Clear) == 0
		if (whole && len(p.Sealed) > c.maxPlain) || (!whole && (len(p.Sealed) > MaxSplitSealed || len(p.Clear) > MaxSplitClear)) {
			return 0, fmt.Errorf("%w: %d sealed and %d clear bytes", ErrSplit, len(p.Sealed), len(p.Clear))
		}
	}
	if err := c.beginWriteLocked(); err != nil {
		return 0, err
	}
	bp := writePool.Get().(*[]byte)
	defer writePool.Put(bp)
	buf := *bp
	const head = 2 * HeaderSize
	total := 0
	for len(pieces) > 0 {
		nonce, frames, bytes := c.send.n, c.wframes, c.wbytes
		rekeyed := false
		vec := c.wvec[:0]
		off, start, taken, size := 0, 0, 0, 0
		for len(pieces) > 0 {
			p := pieces[0]
			var ct []byte
			var err error
			if len(p.Clear) == 0 {
				if off+HeaderSize+len(p.Sealed)+TagSize > len(buf) {
					break
				}
				ct, err = c.send.seal(buf[off+HeaderSize:off+HeaderSize], p.Sealed, nil)
				if err == nil {
					binary.BigEndian.PutUint16(buf[off:], uint16(len(ct)))
					off += HeaderSize + len(ct)
				}
			} else {
				if off+head+splitPrefix+len(p.Sealed)+TagSize > len(buf) {
					break
				}
				pt := buf[off+head : off+head+splitPrefix+len(p.Sealed)]
				binary.BigEndian.PutUint16(pt, uint16(len(p.Clear)))
				copy(pt[splitPrefix:], p.Sealed)
				ct, err = c.send.seal(pt[:0], pt, splitAD)
				if err == nil {
					binary.BigEndian.PutUint16(buf[off:], 0)
					binary.BigEndian.PutUint16(buf[off+HeaderSize:], uint16(len(ct)))
					off += head + len(ct)
					vec = append(vec, buf[start:off], p.Clear)
					start = off
				}
			}
			if err != nil {
				c.werr = err
				c.c.Close()
				return total, err
			}
			rekeyed = c.countWriteLocked(len(ct)) || rekeyed
			taken += len(p.Sealed) + len(p.Clear)
			pieces = pieces[1:]
			if off >= batchSealed {
				break
			}
		}
		if start < off {
			vec = append(vec, buf[start:off])
		}
		for _, v := range vec {
			size += len(v)
		}
		c.wvec = vec
		c.wbufs = vec
		n, err := c.wbufs.WriteTo(c.c)
		left := c.wbufs
		clear(vec)
		c.wbufs = nil
		if err != nil {
			if n == 0 && !rekeyed && isTimeout(err) {
				// Nothing left: forget these frames; the stream is intact.
				c.send.n, c.wframes, c.wbytes = nonce, frames, bytes
				return total, err
			}
			if isTimeout(err) {
				c.pending = slices.Concat(left...) // what WriteTo left of the vector
				return total + taken, err
			}
			return total, c.writeFailedLocked(err)
		}
		if n != int64(size) {
			return total, c.writeFailedLocked(io.ErrShortWrite)
		}
		total += taken
	}
	return total, nil
}

// beginWriteLocked fails with the sticky write error, if any, and sends what
// a timed-out write left unsent.
func (c *Conn) beginWriteLocked() error {
	if c.werr != nil {
		return c.werr
	}
	return c.flushPendingLocked()
}

// flushPendingLocked sends what a timed-out write left unsent.
func (c *Conn) flushPendingLocked() error {
	if len(c.pending) > 0 {
		n, err := c.c.Write(c.pending)
		c.pending = c.pending[n:]
		if err != nil {
			return c.writeFailedLocked(err)
		}
		c.pending = nil
	}
	return nil
}

// writeFailedLocked keeps a timeout recoverable and makes anything else
// fatal.
func (c *Conn) writeFailedLocked(err error) error {
	if !isTimeout(err) {
		c.werr = err
		c.c.Close()
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close closes the underlying connection, unblocking Read and Write.
func (c *Conn) Close() error { return c.c.Close() }

// LocalAddr is the underlying connection's.
func (c *Conn) LocalAddr() net.Addr { return c.c.LocalAddr() }

// RemoteAddr is the underlying connection's.
func (c *Conn) RemoteAddr() net.Addr { return c.c.RemoteAddr() }

// SetDeadline sets both deadlines on the underlying connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetDeadline(t) }

// SetReadDeadline sets the underlying connection's read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.c.SetReadDeadline(t) }

// SetWriteDeadline sets the underlying connection's write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.c.SetWriteDeadline(t) }
