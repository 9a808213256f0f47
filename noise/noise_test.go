package noise

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/nettest"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/internal/race"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type keys struct {
	pk cipher.PubKey
	sk cipher.SecKey
}

func newKeys() keys {
	pk, sk := cipher.GenerateKeyPair()
	return keys{pk, sk}
}

type result struct {
	c   *Conn
	err error
}

// handshake runs both sides over a and b.
func handshake(ctx context.Context, a, b net.Conn, ia, rb Config) (*Conn, *Conn, error, error) {
	ch := make(chan result, 1)
	go func() {
		c, err := Run(ctx, b, rb)
		if err != nil {
			b.Close() // as a real responder does: the initiator sees it at once
		}
		ch <- result{c, err}
	}()
	ca, errA := Run(ctx, a, ia)
	if errA != nil {
		a.Close()
	}
	r := <-ch
	return ca, r.c, errA, r.err
}

func configs(p Pattern, i, r keys) (Config, Config) {
	ic := Config{Pattern: p, Initiator: true, LocalSK: i.sk, RemotePK: r.pk, Purpose: "test"}
	rc := Config{Pattern: p, LocalSK: r.sk, Purpose: "test"}
	if p == KK {
		rc.RemotePK = i.pk
	}
	return ic, rc
}

func TestHandshakes(t *testing.T) {
	for _, p := range []Pattern{XK, KK} {
		t.Run(p.String(), func(t *testing.T) {
			i, r := newKeys(), newKeys()
			a, b := loopback.Pair(t)
			ic, rc := configs(p, i, r)
			ca, cb, errA, errB := handshake(context.Background(), a, b, ic, rc)
			if errA != nil || errB != nil {
				t.Fatalf("handshake: %v / %v", errA, errB)
			}
			defer ca.Close()
			defer cb.Close()
			if cb.RemotePK() != i.pk || ca.RemotePK() != r.pk || ca.LocalPK() != i.pk {
				t.Fatal("keys not learned correctly")
			}
			msg := []byte("hello over " + p.String())
			go ca.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(cb, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("read %q, %v", got, err)
			}
		})
	}
}

// countingConn counts the bytes read through it.
type countingConn struct {
	net.Conn
	mu sync.Mutex
	n  int
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.n += n
	c.mu.Unlock()
	return n, err
}

func TestHandshakeFailures(t *testing.T) {
	i, r, other := newKeys(), newKeys(), newKeys()
	tests := []struct {
		name   string
		mutate func(ic, rc *Config)
	}{
		{"XK wrong responder key", func(ic, rc *Config) { ic.Pattern, rc.Pattern, ic.RemotePK = XK, XK, other.pk }},
		{"KK wrong responder key", func(ic, rc *Config) { ic.Pattern, rc.Pattern, ic.RemotePK = KK, KK, other.pk }},
		{"KK responder expects another initiator", func(ic, rc *Config) { ic.Pattern, rc.Pattern, rc.RemotePK = KK, KK, other.pk }},
		{"purpose mismatch", func(ic, rc *Config) { ic.Purpose = "transport"; rc.Purpose = "dmsg-session" }},
		{"pattern mismatch", func(ic, rc *Config) { ic.Pattern, rc.Pattern = XK, KK }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ic, rc := configs(KK, i, r)
			tt.mutate(&ic, &rc)
			if rc.Pattern == KK && rc.RemotePK.IsNull() {
				rc.RemotePK = i.pk
			}
			a, b := loopback.Pair(t)
			cb := &countingConn{Conn: b}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ca, cr, errA, errB := handshake(ctx, a, cb, ic, rc)
			if ca != nil || cr != nil || errA == nil || errB == nil {
				t.Fatalf("handshake succeeded: %v / %v", errA, errB)
			}
			if !errors.Is(errA, ErrHandshake) || !errors.Is(errB, ErrHandshake) {
				t.Fatalf("errors are not ErrHandshake: %v / %v", errA, errB)
			}
			// Only the first handshake message reached the responder: no
			// application byte crossed.
			cb.mu.Lock()
			n := cb.n
			cb.mu.Unlock()
			if n > HeaderSize+maxHandshakeMessage {
				t.Fatalf("responder read %d bytes", n)
			}
			a.Close()
			b.Close()
		})
	}
}

func TestHandshakeRejectsBadInput(t *testing.T) {
	r := newKeys()
	_, rc := configs(XK, newKeys(), r)
	send := func(t *testing.T, raw []byte) error {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		go func() {
			a.Write(raw)
			io.Copy(io.Discard, a)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := Run(ctx, b, rc)
		return err
	}
	// Message 1 of XK is e (33 bytes) and a 16-byte tag; an e that is not a
	// curve point must fail.
	msg := make([]byte, HeaderSize+33+16)
	binary.BigEndian.PutUint16(msg, 33+16)
	msg[2] = 0x02
	for i := 3; i < 35; i++ {
		msg[i] = 0xff // x ≥ p: not a field element, not a point
	}
	if err := send(t, msg); !errors.Is(err, ErrHandshake) {
		t.Fatalf("invalid ephemeral key: %v", err)
	}
	big := make([]byte, HeaderSize)
	binary.BigEndian.PutUint16(big, 60000)
	if err := send(t, big); !errors.Is(err, ErrHandshake) {
		t.Fatalf("oversized handshake message: %v", err)
	}
	if err := send(t, []byte{0, 5, 1}); !errors.Is(err, ErrHandshake) {
		t.Fatalf("truncated handshake message: %v", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_, rc := configs(XK, newKeys(), newKeys())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, b, rc) // the initiator never speaks
	if !errors.Is(err, ErrHandshake) {
		t.Fatalf("err = %v", err)
	}
}

// pipe makes a connected pair of Conns over mk, using ciph for the
// transport phase.
func pipe(t testing.TB, p Pattern, ciph Cipher, mk func(testing.TB) (net.Conn, net.Conn)) (*Conn, *Conn) {
	t.Helper()
	if ciph == AESGCM && !hasAESHardware() {
		t.Skip("no AES hardware here")
	}
	a, b := mk(t)
	ic, rc := configs(p, newKeys(), newKeys())
	ic.noAES = ciph == ChaChaPoly
	ca, cb, errA, errB := handshake(context.Background(), a, b, ic, rc)
	if errA != nil || errB != nil {
		t.Fatalf("handshake: %v / %v", errA, errB)
	}
	if ca.Cipher() != ciph || cb.Cipher() != ciph {
		t.Fatalf("ciphers %v/%v, want %v", ca.Cipher(), cb.Cipher(), ciph)
	}
	return ca, cb
}

var ciphers = []Cipher{ChaChaPoly, AESGCM}

func TestCipherNegotiation(t *testing.T) {
	if !hasAESHardware() {
		t.Skip("no AES hardware here: only ChaChaPoly can be chosen")
	}
	tests := []struct {
		initNoAES, respNoAES bool
		want                 Cipher
	}{
		{false, false, AESGCM},
		{true, false, ChaChaPoly},
		{false, true, ChaChaPoly},
		{true, true, ChaChaPoly},
	}
	for _, tt := range tests {
		a, b := loopback.Pair(t)
		ic, rc := configs(XK, newKeys(), newKeys())
		ic.noAES, rc.noAES = tt.initNoAES, tt.respNoAES
		ca, cb, errA, errB := handshake(context.Background(), a, b, ic, rc)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if ca.Cipher() != tt.want || cb.Cipher() != tt.want {
			t.Errorf("%+v: got %v/%v", tt, ca.Cipher(), cb.Cipher())
		}
		go ca.Write([]byte("x"))
		one := make([]byte, 1)
		if _, err := io.ReadFull(cb, one); err != nil || one[0] != 'x' {
			t.Errorf("%+v: data did not cross: %v", tt, err)
		}
		ca.Close()
		cb.Close()
	}
}

// A man in the middle who flips the capability byte (to force a cipher)
// breaks the handshake: the transcript covers it.
func TestCapabilityTamperingFails(t *testing.T) {
	a, x1 := net.Pipe()
	x2, b := net.Pipe()
	go mitm(x1, x2, func(i int, f []byte) [][]byte {
		if i == 0 {
			f[len(f)-17] ^= capAESHardware // last payload byte before the tag
		}
		return [][]byte{f}
	})
	go func() { io.Copy(x1, x2); x1.Close() }()
	ic, rc := configs(XK, newKeys(), newKeys())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	ca, cb, errA, errB := handshake(ctx, a, b, ic, rc)
	if ca != nil || cb != nil || errB == nil {
		t.Fatalf("tampered handshake succeeded: %v / %v", errA, errB)
	}
	x1.Close()
	x2.Close()
}

func memPair(testing.TB) (net.Conn, net.Conn) { return net.Pipe() }

func TestNettest(t *testing.T) {
	for _, ciph := range ciphers {
		t.Run("TCP/"+ciph.String(), func(t *testing.T) {
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				a, b := pipe(t, XK, ciph, loopback.Pair)
				return a, b, func() { a.Close(); b.Close() }, nil
			})
		})
		t.Run("Pipe/"+ciph.String(), func(t *testing.T) {
			nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
				a, b := pipe(t, KK, ciph, memPair)
				return a, b, func() { a.Close(); b.Close() }, nil
			})
		})
	}
}

func TestLargeTransferAndRekey(t *testing.T) {
	for _, ciph := range ciphers {
		t.Run(ciph.String(), func(t *testing.T) { testLargeTransfer(t, ciph) })
	}
}

func testLargeTransfer(t *testing.T, ciph Cipher) {
	a, b := pipe(t, XK, ciph, loopback.Pair)
	defer a.Close()
	defer b.Close()
	// Rekey every 3 frames or 100 KB, whichever first, on both sides.
	for _, c := range []*Conn{a, b} {
		c.rekeyFrames, c.rekeyBytes = 3, 100_000
	}
	keyBefore := a.send.k
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	go func() {
		// Odd write sizes: frames split at MaxPlaintext and at the buffer end.
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := min(len(rest), 1+i*7919%300000)
			if _, err := a.Write(rest[:n]); err != nil {
				t.Error(err)
				return
			}
			rest = rest[n:]
		}
	}()
	got := make([]byte, len(data))
	// Odd read sizes too: partial plaintext is kept between reads.
	for off := 0; off < len(got); {
		n, err := b.Read(got[off:min(len(got), off+1+off%70000)])
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("data corrupted")
	}
	if a.send.k == keyBefore {
		t.Fatal("the sending key never changed")
	}
}

// mitm forwards u16-framed messages from src to dst, passing each through
// edit (which may drop, change or duplicate it), then closes dst.
func mitm(src, dst net.Conn, edit func(i int, frame []byte) [][]byte) {
	defer dst.Close()
	for i := 0; ; i++ {
		var hdr [2]byte
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		frame := append(hdr[:], body...)
		for _, f := range edit(i, frame) {
			if _, err := dst.Write(f); err != nil {
				return
			}
		}
	}
}

// attacked builds initiator → mitm → responder, where the initiator's
// messages number 0, 1 (XK handshake messages 1 and 3) and then frames 2….
func attacked(t *testing.T, edit func(i int, frame []byte) [][]byte) (*Conn, *Conn) {
	t.Helper()
	a, x1 := net.Pipe()
	x2, b := net.Pipe()
	go mitm(x1, x2, edit)
	go func() { io.Copy(x1, x2) }() // responder → initiator untouched
	ic, rc := configs(XK, newKeys(), newKeys())
	ca, cb, errA, errB := handshake(context.Background(), a, b, ic, rc)
	if errA != nil || errB != nil {
		t.Fatalf("handshake: %v / %v", errA, errB)
	}
	t.Cleanup(func() { ca.Close(); cb.Close(); x1.Close(); x2.Close() })
	return ca, cb
}

func pass(_ int, f []byte) [][]byte { return [][]byte{f} }

func TestFrameAttacks(t *testing.T) {
	const first = 2 // index of the first transport frame from the initiator
	tests := []struct {
		name string
		edit func(i int, f []byte) [][]byte
		want error
	}{
		{"tampered", func(i int, f []byte) [][]byte {
			if i == first+1 {
				f[len(f)/2] ^= 0x80
			}
			return [][]byte{f}
		}, ErrDecrypt},
		{"replayed", func(i int, f []byte) [][]byte {
			if i == first {
				return [][]byte{f, f}
			}
			return [][]byte{f}
		}, ErrDecrypt},
		{"reordered", func() func(int, []byte) [][]byte {
			var held []byte
			return func(i int, f []byte) [][]byte {
				switch i {
				case first:
					held = f
					return nil
				case first + 1:
					return [][]byte{f, held}
				}
				return [][]byte{f}
			}
		}(), ErrDecrypt},
		{"dropped", func(i int, f []byte) [][]byte {
			if i == first {
				return nil
			}
			return [][]byte{f}
		}, ErrDecrypt},
		{"truncated", func(i int, f []byte) [][]byte {
			if i == first+1 {
				return [][]byte{f[:len(f)/2], nil} // then the stream ends
			}
			if i > first+1 {
				return nil
			}
			return [][]byte{f}
		}, io.ErrUnexpectedEOF},
		{"undersized", func(i int, f []byte) [][]byte {
			if i == first+1 {
				return [][]byte{{0, 15}, make([]byte, 15)}
			}
			return [][]byte{f}
		}, ErrFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			edit := tt.edit
			if tt.name == "truncated" {
				// Stop forwarding after the cut: close the link.
				edit = func(i int, f []byte) [][]byte {
					out := tt.edit(i, f)
					if i == first+1 {
						return out[:1]
					}
					return out
				}
			}
			a, b := attacked(t, edit)
			go func() {
				for i := 0; i < 4; i++ {
					if _, err := a.Write(bytes.Repeat([]byte{byte('a' + i)}, 1000)); err != nil {
						return
					}
				}
				if tt.name == "truncated" {
					time.Sleep(50 * time.Millisecond)
					a.Close()
				}
			}()
			var err error
			var got []byte
			buf := make([]byte, 4096)
			for err == nil {
				var n int
				b.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err = b.Read(buf)
				got = append(got, buf[:n]...)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// Nothing after the attack point was accepted.
			if tt.name != "truncated" && len(got) > 1000 {
				t.Fatalf("read %d bytes past the attacked frame", len(got))
			}
			// The session is dead, not desynchronised: further reads fail too.
			if _, err2 := b.Read(buf); err2 == nil {
				t.Fatal("read succeeded after a fatal frame error")
			}
		})
	}
	t.Run("control: untouched", func(t *testing.T) {
		a, b := attacked(t, pass)
		go a.Write([]byte("fine"))
		got := make([]byte, 4)
		if _, err := io.ReadFull(b, got); err != nil || string(got) != "fine" {
			t.Fatalf("%q %v", got, err)
		}
	})
}

func TestWriteTimeoutKeepsSessionUsable(t *testing.T) {
	a, b := pipe(t, KK, ChaChaPoly, loopback.Pair)
	defer a.Close()
	defer b.Close()
	a.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := a.Write([]byte("lost")); err == nil {
		t.Fatal("write with a past deadline succeeded")
	}
	a.SetWriteDeadline(time.Time{})
	go a.Write([]byte("kept"))
	got := make([]byte, 4)
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "kept" {
		t.Fatalf("after a timed-out write: %q %v", got, err)
	}
}

func TestNoAllocations(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	a, b := pipe(t, XK, ChaChaPoly, loopback.Pair)
	defer a.Close()
	defer b.Close()
	msg := make([]byte, 32<<10)
	buf := make([]byte, 64<<10)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per write+read", allocs)
	}
}

// byteConn is a net.Conn that reads from fixed bytes.
type byteConn struct {
	net.Conn
	r io.Reader
}

func (c *byteConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *byteConn) Write(p []byte) (int, error) { return len(p), nil }
func (c *byteConn) Close() error                { return nil }

// FuzzFrameReader feeds arbitrary bytes to a Conn's reader: it must never
// panic, and must return only bytes from frames that authenticate.
func FuzzFrameReader(f *testing.F) {
	ia, ra := newKeys(), newKeys()
	// A real session's keys, so seeds can hold valid frames.
	a, b := net.Pipe()
	ic, rc := configs(XK, ia, ra)
	ca, cb, errA, errB := handshake(context.Background(), a, b, ic, rc)
	if errA != nil || errB != nil {
		f.Fatal(errA, errB)
	}
	sendKey := ca.send.k
	ca.Close()
	cb.Close()
	valid := func(msgs ...string) []byte {
		var out bytes.Buffer
		w := newConn(&byteConn{}, nil, nil, ia.pk, ra.pk)
		w.send = unsafeCipher(sendKey)
		for _, m := range msgs {
			w.c = &writerConn{&out}
			w.Write([]byte(m))
		}
		return out.Bytes()
	}
	f.Add(valid("hello"))
	var split bytes.Buffer
	sw := newConn(&writerConn{&split}, unsafeCipher(sendKey), nil, ia.pk, ra.pk)
	sw.WriteSplit([]byte("hdr"), []byte("clear part"))
	sw.Write([]byte("after"))
	f.Add(split.Bytes())
	f.Add(valid("a", "bb", "ccc"))
	f.Add([]byte{0, 16})
	f.Add([]byte{255, 255, 1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := newConn(&byteConn{r: bytes.NewReader(data)}, nil, unsafeCipher(sendKey), ra.pk, ia.pk)
		buf := make([]byte, 100)
		total := 0
		for i := 0; i < 1000; i++ {
			n, err := r.Read(buf[:1+i%100])
			total += n
			if err != nil {
				break
			}
		}
		if total > len(data) {
			t.Fatalf("read %d bytes from %d bytes of input", total, len(data))
		}
	})
}

type writerConn struct{ w io.Writer }

func (c *writerConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *writerConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *writerConn) Close() error                     { return nil }
func (c *writerConn) LocalAddr() net.Addr              { return nil }
func (c *writerConn) RemoteAddr() net.Addr             { return nil }
func (c *writerConn) SetDeadline(time.Time) error      { return nil }
func (c *writerConn) SetReadDeadline(time.Time) error  { return nil }
func (c *writerConn) SetWriteDeadline(time.Time) error { return nil }

func TestAuthenticateBinding(t *testing.T) {
	bind := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	run := func(bi, br []byte) (cipher.PubKey, cipher.PubKey, error, error) {
		i, r := newKeys(), newKeys()
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ic, rc := configs(XK, i, r)
		ic.Binding, rc.Binding = bi, br
		ch := make(chan error, 1)
		var got cipher.PubKey
		go func() {
			var err error
			got, err = Authenticate(context.Background(), b, rc)
			if err != nil {
				b.Close()
			}
			ch <- err
		}()
		pk, err := Authenticate(context.Background(), a, ic)
		if err != nil {
			a.Close()
		}
		errR := <-ch
		if err == nil && (pk != r.pk || got != i.pk) {
			t.Fatal("authenticated the wrong keys")
		}
		return pk, got, err, errR
	}
	if _, _, err, errR := run(bind(1), bind(1)); err != nil || errR != nil {
		t.Fatalf("same binding: %v / %v", err, errR)
	}
	// Two different channels (a man in the middle terminating both): fails.
	if _, _, err, errR := run(bind(1), bind(2)); !errors.Is(err, ErrHandshake) || !errors.Is(errR, ErrHandshake) {
		t.Fatalf("different bindings: %v / %v", err, errR)
	}
	if _, _, err, _ := run(nil, nil); !errors.Is(err, ErrHandshake) {
		t.Fatalf("no binding: %v", err)
	}
}

// CloseWrite ends one direction with an authenticated close-notify: the
// peer reads everything, then io.EOF, and can still answer.
func TestCloseWrite(t *testing.T) {
	for _, ciph := range ciphers {
		t.Run(ciph.String(), func(t *testing.T) {
			ca, cb := pipe(t, KK, ciph, loopback.Pair)
			defer ca.Close()
			defer cb.Close()
			cb.RequireCloseNotify()
			msg := bytes.Repeat([]byte("x"), 200000)
			go func() {
				ca.Write(msg)
				ca.CloseWrite()
			}()
			got, err := io.ReadAll(cb)
			if err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("read %d bytes, %v", len(got), err)
			}
			if _, err := ca.Write([]byte("more")); !errors.Is(err, ErrWriteClosed) {
				t.Fatalf("write after CloseWrite: %v", err)
			}
			if _, err := cb.Write([]byte("answer")); err != nil {
				t.Fatal(err)
			}
			cb.CloseWrite()
			got, err = io.ReadAll(ca)
			if err != nil || string(got) != "answer" {
				t.Fatalf("answer %q, %v", got, err)
			}
		})
	}
}

// With RequireCloseNotify, a carrier that ends without close-notify (a
// stream cut short) is io.ErrUnexpectedEOF; without it, io.EOF.
func TestRequireCloseNotify(t *testing.T) {
	for _, strict := range []bool{false, true} {
		a, b := loopback.Pair(t)
		ic, rc := configs(KK, newKeys(), newKeys())
		ca, cb, errA, errB := handshake(context.Background(), a, b, ic, rc)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if strict {
			cb.RequireCloseNotify()
		}
		ca.Write([]byte("partial"))
		a.(*net.TCPConn).CloseWrite() // the carrier ends, no close-notify
		buf := make([]byte, 7)
		if _, err := io.ReadFull(cb, buf); err != nil {
			t.Fatal(err)
		}
		_, err := cb.Read(buf)
		want := io.EOF
		if strict {
			want = io.ErrUnexpectedEOF
		}
		if !errors.Is(err, want) || (!strict && errors.Is(err, io.ErrUnexpectedEOF)) {
			t.Fatalf("strict=%v: %v, want %v", strict, err, want)
		}
		ca.Close()
		cb.Close()
	}
}
