package noise

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/internal/race"
)

// Split frames interleaved with whole frames arrive as one stream, over TCP
// (writev) and a pipe (one write per part), across rekeys, whatever the
// reader's buffer sizes.
func TestWriteSplit(t *testing.T) {
	for _, ciph := range ciphers {
		for name, mk := range map[string]func(testing.TB) (net.Conn, net.Conn){"TCP": loopback.Pair, "Pipe": memPair} {
			t.Run(name+"/"+ciph.String(), func(t *testing.T) {
				a, b := pipe(t, KK, ciph, mk)
				defer a.Close()
				defer b.Close()
				for _, c := range []*Conn{a, b} {
					c.rekeyFrames, c.rekeyBytes = 5, 50_000
				}
				data := make([]byte, 8<<20)
				rand.Read(data)
				go func() {
					rest := data
					for i := 0; len(rest) > 0; i++ {
						var err error
						if i%3 == 2 {
							n := min(len(rest), 1+i*7919%100000)
							_, err = a.Write(rest[:n])
							rest = rest[n:]
						} else {
							s := min(len(rest), i%2*(1+i%9)) // sometimes nothing sealed
							if i%7 == 0 {
								s = min(len(rest), 1+i*31%5000) // more than a header
							}
							c := min(len(rest)-s, 1+i*104729%MaxSplitClear)
							_, err = a.WriteSplit(rest[:s], rest[s:s+c])
							rest = rest[s+c:]
						}
						if err != nil {
							t.Error(err)
							return
						}
					}
					a.CloseWrite()
				}()
				b.RequireCloseNotify()
				var got []byte
				buf := make([]byte, 70000)
				for i := 0; ; i++ {
					n, err := b.Read(buf[:1+i*31%len(buf)])
					got = append(got, buf[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				if sha256.Sum256(got) != sha256.Sum256(data) {
					t.Fatalf("got %d bytes, not the %d written", len(got), len(data))
				}
			})
		}
	}
	t.Run("batches", func(t *testing.T) {
		for name, mk := range map[string]func(testing.TB) (net.Conn, net.Conn){"TCP": loopback.Pair, "Pipe": memPair} {
			a, b := pipe(t, KK, AESGCM, mk)
			data := make([]byte, 4<<20)
			rand.Read(data)
			go func() {
				// Batches of whole and split pieces, larger than one
				// write buffer, some pieces of the largest size.
				rest := data
				for i := 0; len(rest) > 0; i++ {
					var batch []Piece
					for j := 0; j < 1+i%12 && len(rest) > 0; j++ {
						s := min(len(rest), []int{7, MaxPlaintext, 1 + i*j*977%40000}[(i+j)%3])
						c := 0
						if (i+j)%2 == 0 {
							s = min(s, MaxSplitSealed)
							c = min(len(rest)-s, []int{MaxSplitClear, 1 + i*j*7919%MaxSplitClear}[j%2])
						}
						batch = append(batch, Piece{rest[:s], rest[s : s+c]})
						rest = rest[s+c:]
					}
					if _, err := a.WriteBatch(batch); err != nil {
						t.Error(err)
						a.Close()
						return
					}
				}
				a.CloseWrite()
			}()
			got, err := io.ReadAll(b)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: read %d of %d bytes: %v", name, len(got), len(data), err)
			}
			a.Close()
			b.Close()
		}
	})
	t.Run("too large", func(t *testing.T) {
		a, b := pipe(t, KK, ChaChaPoly, loopback.Pair)
		defer a.Close()
		defer b.Close()
		if _, err := a.WriteSplit(nil, make([]byte, MaxSplitClear+1)); !errors.Is(err, ErrSplit) {
			t.Fatalf("oversized clear part: %v", err)
		}
		if _, err := a.WriteSplit(make([]byte, MaxSplitSealed+1), []byte{1}); !errors.Is(err, ErrSplit) {
			t.Fatalf("oversized sealed part: %v", err)
		}
		if _, err := a.WriteBatch([]Piece{{Sealed: make([]byte, MaxPlaintext+1)}}); !errors.Is(err, ErrSplit) {
			t.Fatalf("whole piece larger than a frame: %v", err)
		}
	})
}

// splitStream is what a session writes for Write("before"),
// WriteSplit("hdr", "clear-payload"), Write("after"), and the offsets of the
// split frame and its clear part in it.
func splitStream(t *testing.T) (stream []byte, split, clear int, key [32]byte) {
	t.Helper()
	rand.Read(key[:])
	var out bytes.Buffer
	w := newConn(&writerConn{&out}, unsafeCipher(key), nil, cipher.PubKey{}, cipher.PubKey{})
	w.Write([]byte("before"))
	split = out.Len()
	if _, err := w.WriteSplit([]byte("hdr"), []byte("clear-payload")); err != nil {
		t.Fatal(err)
	}
	clear = out.Len() - len("clear-payload")
	w.Write([]byte("after"))
	return out.Bytes(), split, clear, key
}

// readStream reads everything a session reads from stream.
func readStream(stream []byte, key [32]byte) (string, error) {
	r := newConn(&byteConn{r: bytes.NewReader(stream)}, nil, unsafeCipher(key), cipher.PubKey{}, cipher.PubKey{})
	var got []byte
	buf := make([]byte, 5)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return string(got), err
		}
	}
}

// What a split frame authenticates and what it does not: the clear part's
// content is the end-to-end layer's to check, everything else is the
// session's.
func TestSplitFrameAttacks(t *testing.T) {
	const whole = "beforehdrclear-payloadafter"
	tests := []struct {
		name    string
		edit    func(s []byte, split, clear int) []byte
		want    string
		wantErr error
	}{
		{"untouched", func(s []byte, _, _ int) []byte { return s }, whole, nil},
		{"clear byte changed: delivered as changed, stream stays in step", func(s []byte, _, clear int) []byte {
			s[clear] ^= 'c' ^ 'C'
			return s
		}, "beforehdrClear-payloadafter", nil},
		{"sealed part changed", func(s []byte, split, _ int) []byte {
			s[split+5] ^= 1
			return s
		}, "before", ErrDecrypt},
		{"split marker changed", func(s []byte, split, _ int) []byte {
			s[split+1] = 0x20 // now a whole frame of 32 bytes
			return s
		}, "before", ErrDecrypt},
		{"whole frame turned split", func(s []byte, _, _ int) []byte {
			return append([]byte{0, 0}, s...)
		}, "", ErrDecrypt},
		{"split length changed", func(s []byte, split, _ int) []byte {
			s[split+3]++
			return s
		}, "before", ErrDecrypt},
		{"undersized split", func(s []byte, split, _ int) []byte {
			s[split+2], s[split+3] = 0, TagSize+splitPrefix-1
			return s
		}, "before", ErrFrame},
		{"cut inside the clear part", func(s []byte, _, clear int) []byte {
			return s[:clear+5]
		}, "beforehdrclear", io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, split, clear, key := splitStream(t)
			got, err := readStream(tt.edit(s, split, clear), key)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("read %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestWriteSplitNoAllocations(t *testing.T) {
	if race.Enabled {
		t.Skip("the race detector allocates")
	}
	a, b := pipe(t, XK, AESGCM, loopback.Pair)
	defer a.Close()
	defer b.Close()
	hdr, msg := make([]byte, 7), make([]byte, 60000)
	buf := make([]byte, 64<<10)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.WriteSplit(hdr, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(b, buf[:len(hdr)+len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Fatalf("%.1f allocations per split write+read", allocs)
	}
}

// A split write that times out before sending anything leaves the session
// usable, as Write does.
func TestWriteSplitTimeoutKeepsSessionUsable(t *testing.T) {
	a, b := pipe(t, KK, AESGCM, loopback.Pair)
	defer a.Close()
	defer b.Close()
	a.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := a.WriteSplit([]byte("lost "), []byte("payload")); err == nil {
		t.Fatal("split write with a past deadline succeeded")
	}
	a.SetWriteDeadline(time.Time{})
	go a.WriteBatch([]Piece{{Sealed: []byte("kept ")}, {Sealed: []byte("hdr "), Clear: []byte("payload")}})
	got := make([]byte, len("kept hdr payload"))
	if _, err := io.ReadFull(b, got); err != nil || string(got) != "kept hdr payload" {
		t.Fatalf("after a timed-out split write: %q %v", got, err)
	}
}

// SealInPlace seals frames where they lie, in order among Writes and across
// rekeys; emit puts them on the stream. Frames of the wrong size are refused
// before anything is sealed, and a failed emit breaks the stream.
func TestSealInPlace(t *testing.T) {
	for _, ciph := range ciphers {
		t.Run(ciph.String(), func(t *testing.T) {
			a, b := pipe(t, KK, ciph, loopback.Pair)
			defer a.Close()
			defer b.Close()
			for _, c := range []*Conn{a, b} {
				c.rekeyFrames, c.rekeyBytes = 5, 50_000
			}
			data := make([]byte, 4<<20)
			rand.Read(data)
			emit := func(fs [][]byte) error {
				for _, f := range fs {
					if _, err := a.c.Write(f); err != nil {
						return err
					}
				}
				return nil
			}
			go func() {
				rest := data
				for i := 0; len(rest) > 0; i++ {
					n := min(len(rest), 1+i*7919%MaxPlaintext)
					if i%4 == 3 {
						if _, err := a.Write(rest[:n]); err != nil {
							t.Error(err)
							return
						}
						rest = rest[n:]
						continue
					}
					var frames [][]byte
					for k := 0; k < 1+i%3 && len(rest) > 0; k++ {
						n := min(len(rest), 1+(i+k)*104729%MaxPlaintext)
						f := make([]byte, HeaderSize+n+TagSize)
						copy(f[HeaderSize:], rest[:n])
						frames = append(frames, f)
						rest = rest[n:]
					}
					if err := a.SealInPlace(frames, emit); err != nil {
						t.Error(err)
						return
					}
				}
				a.CloseWrite()
			}()
			b.RequireCloseNotify()
			got, err := io.ReadAll(b)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("got %d bytes, not the %d written", len(got), len(data))
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		a, b := pipe(t, KK, AESGCM, loopback.Pair)
		defer a.Close()
		defer b.Close()
		nonce := a.send.n
		never := func([][]byte) error { t.Error("emitted"); return nil }
		for _, size := range []int{0, HeaderSize + TagSize - 1, HeaderSize + MaxPlaintext + TagSize + 1} {
			if err := a.SealInPlace([][]byte{make([]byte, HeaderSize+TagSize), make([]byte, size)}, never); err == nil {
				t.Errorf("a frame of %d bytes taken", size)
			}
		}
		if a.send.n != nonce {
			t.Fatal("a refused call sealed frames")
		}
		broken := errors.New("carrier gone")
		if err := a.SealInPlace([][]byte{make([]byte, HeaderSize+10+TagSize)}, func([][]byte) error { return broken }); err != broken {
			t.Fatalf("emit's error: %v", err)
		}
		if _, err := a.Write([]byte("x")); err == nil {
			t.Fatal("a write after a failed emit succeeded")
		}
	})
}
