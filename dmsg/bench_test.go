package dmsg

import (
	"io"
	"testing"
)

// BenchmarkStream moves data from one client to another through a server,
// all in this process (so all three share the machine's cores).
func BenchmarkStream(b *testing.B) {
	e := newEnv(b)
	e.server(ServerConfig{})
	x, y := e.client(1), e.client(1)
	sa, sb := pair(b, x, y, 45)
	defer sa.Close()
	defer sb.Close()
	msg := make([]byte, 256<<10)
	const per = 16
	b.SetBytes(int64(len(msg)) * per)
	b.ReportAllocs()
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.CopyN(io.Discard, sb, int64(len(msg))*per*int64(b.N))
	}()
	for i := 0; i < b.N; i++ {
		for j := 0; j < per; j++ {
			if _, err := sa.Write(msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	<-done
}
