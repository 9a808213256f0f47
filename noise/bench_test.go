package noise

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"

	"github.com/skyfleet/skywire/internal/loopback"
)

func unsafeCipher(k [32]byte) *cipherState { return newCipherState(ChaChaPoly, k, 0) }

// BenchmarkSeal measures encryption alone: Write of 1 MiB into a sink.
func BenchmarkSeal(b *testing.B) {
	for _, ciph := range ciphers {
		b.Run(ciph.String(), func(b *testing.B) { benchSeal(b, ciph) })
	}
}

func benchSeal(b *testing.B, ciph Cipher) {
	var k [32]byte
	c := newConn(&writerConn{io.Discard}, newCipherState(ciph, k, 0), nil, newKeys().pk, newKeys().pk)
	msg := make([]byte, 1<<20)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures decryption alone: Read of pre-sealed frames.
func BenchmarkOpen(b *testing.B) {
	for _, ciph := range ciphers {
		b.Run(ciph.String(), func(b *testing.B) { benchOpen(b, ciph) })
	}
}

func benchOpen(b *testing.B, ciph Cipher) {
	var k [32]byte
	var stream bytes.Buffer
	w := newConn(&writerConn{&stream}, newCipherState(ciph, k, 0), nil, newKeys().pk, newKeys().pk)
	msg := make([]byte, 1<<20)
	w.Write(msg)
	sealed := stream.Bytes()
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		r := newConn(&byteConn{r: bytes.NewReader(sealed)}, nil, newCipherState(ciph, k, 0), newKeys().pk, newKeys().pk)
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
	}
}

// benchStream copies through a and reads from b, in 64 KiB writes.
func benchStream(b *testing.B, w io.Writer, r io.Reader) {
	msg := make([]byte, 256<<10)
	buf := make([]byte, 256<<10)
	const per = 64 // writes per iteration: 16 MiB
	b.SetBytes(int64(len(msg)) * per)
	b.ReportAllocs()
	done := make(chan struct{})
	go func() {
		defer close(done)
		need := int64(len(msg)) * per * int64(b.N)
		for need > 0 {
			n, err := r.Read(buf)
			if err != nil {
				b.Error(err)
				return
			}
			need -= int64(n)
		}
	}()
	for i := 0; i < b.N; i++ {
		for j := 0; j < per; j++ {
			if _, err := w.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	<-done
}

// BenchmarkTCP is the reference for BenchmarkConnTCP: plain loopback TCP.
func BenchmarkTCP(b *testing.B) {
	x, y := loopback.Pair(b)
	defer x.Close()
	defer y.Close()
	benchStream(b, x, y)
}

// BenchmarkConnTCP is a Noise session over loopback TCP.
func BenchmarkConnTCP(b *testing.B) {
	for _, ciph := range ciphers {
		b.Run(ciph.String(), func(b *testing.B) {
			x, y := pipe(b, XK, ciph, loopback.Pair)
			defer x.Close()
			defer y.Close()
			benchStream(b, x, y)
		})
	}
}

// BenchmarkHandshakeXK is TCP connect plus the XK handshake, both sides.
func BenchmarkHandshakeXK(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	i, r := newKeys(), newKeys()
	ic, rc := configs(XK, i, r)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				if s, err := Run(context.Background(), c, rc); err == nil {
					s.Close()
				} else {
					c.Close()
				}
			}()
		}
	}()
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		s, err := Run(context.Background(), c, ic)
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
