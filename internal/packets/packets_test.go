package packets

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// Frames go through as written, of every size up to the largest; an
// oversized one is refused, a cut one is an error, not an end.
func TestFrames(t *testing.T) {
	var b bytes.Buffer
	sizes := []int{0, 1, 20, 256, 257, 1500, 16384, MaxBody}
	for i, n := range sizes {
		if err := WriteFrame(&b, byte(i), bytes.Repeat([]byte{byte(n)}, n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteFrame(&b, KindPacket, make([]byte, MaxBody+1)); err == nil {
		t.Fatal("an oversized frame was written")
	}
	r := bufio.NewReader(&b)
	buf := make([]byte, MaxBody)
	for i, n := range sizes {
		kind, body, err := ReadFrame(r, buf)
		if err != nil || kind != byte(i) || len(body) != n || (n > 0 && body[n-1] != byte(n)) {
			t.Fatalf("frame %d: kind %d, %d bytes, %v", i, kind, len(body), err)
		}
	}
	if _, _, err := ReadFrame(r, buf); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	WriteFrame(&b, 7, []byte("a probe"))
	if kind, body, err := ReadNewFrame(&b); err != nil || kind != 7 || string(body) != "a probe" || cap(body) != len(body) {
		t.Fatalf("a frame in its own buffer: kind %d %q (cap %d) %v", kind, body, cap(body), err)
	}
	WriteFrame(&b, KindPacket, make([]byte, 100))
	cut := bytes.NewReader(b.Bytes()[:50])
	if _, _, err := ReadFrame(cut, buf); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a cut frame: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0, 0}), buf); err == nil {
		t.Fatal("a frame of length 0 was read")
	}
}
