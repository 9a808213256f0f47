package testtool

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Ports handed to a program to bind later are taken below the kernel's
// ephemeral range: a port the kernel gave to a listener on port 0 and that
// the test then closed is handed out again by the kernel to the next
// outgoing connection or port-0 listener of any process, and a busy run
// (tests in parallel, many connections) took one now and then ("bind:
// address already in use"). Below the range only another test picking the
// same port at random can clash, and never twice in one process.
var ports struct {
	sync.Mutex
	given map[int]bool
}

// lowest is where the ports handed out start; the ephemeral range's lower
// end (from the kernel) is where they stop.
const lowest = 10000

// ephemeralLow is the first port of the kernel's ephemeral range (32768 where
// it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768
}

// FreePorts returns n loopback ports, free for TCP and UDP now, that this
// process has not handed out before, for programs the test starts later.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	hi := ephemeralLow()
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 10000 {
			t.Fatalf("no free loopback port between %d and %d", lowest, hi)
		}
		var p int
		if hi-lowest < 1000 { // an unusual ephemeral range: let the kernel choose
			p = 0
		} else {
			p = lowest + rand.IntN(hi-lowest)
			if ports.given[p] {
				continue
			}
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		p = ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		ports.given[p] = true
		out = append(out, p)
	}
	return out
}

// FreeAddr is one of FreePorts as "127.0.0.1:port".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePorts(t, 1)[0]))
}
