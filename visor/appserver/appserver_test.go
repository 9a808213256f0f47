//go:build unix

package appserver_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc/jsonrpc"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/nettest"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/apps/sdk"
	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/internal/loopback"
	"github.com/skyfleet/skywire/internal/testnet"
	"github.com/skyfleet/skywire/internal/testtool"
	"github.com/skyfleet/skywire/visor"
)

// The test binary doubles as the apps: a visor runs apps_path/<name>, a
// link to this binary, and its name picks what it does.
func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case "echo":
		os.Exit(echoApp())
	case "holder":
		os.Exit(holderApp())
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(time.Hour)
		return
	}
	goleak.VerifyTestMain(m)
}

// echoApp listens on its port and echoes every connection.
func echoApp() int {
	c, err := sdk.FromEnv()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	l, err := c.Listen(c.Port())
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	fmt.Println("echo listening on", l.Addr())
	for {
		conn, err := l.Accept()
		if err != nil {
			fmt.Println("accept:", err)
			return 1
		}
		go func() {
			defer conn.Close()
			io.Copy(conn, conn)
		}()
	}
}

// holderApp prints its credentials (so the test can act as this app) and
// waits to be stopped.
func holderApp() int {
	fmt.Printf("key=%s server=%s visor=%s port=%s join=%s\n", os.Getenv(appproto.EnvKey), os.Getenv(appproto.EnvServer), os.Getenv(appproto.EnvVisor), os.Getenv(appproto.EnvPort), os.Getenv(appproto.EnvJoin))
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM)
	<-ch
	fmt.Println("stopping")
	return 0
}

func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "as")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startNet runs a line of visors whose apps_path links every test app to
// this binary.
func startNet(t *testing.T, visors int, apps func(i int, pks []cipher.PubKey) []visor.AppConfig) *testnet.Network {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the test apps use SIGTERM")
	}
	dir := shortDir(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "apps"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"echo", "holder", "stubborn"} {
		if err := os.Symlink(exe, filepath.Join(dir, "apps", name)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := testnet.Start(context.Background(), testnet.Config{Dir: dir, Visors: visors, Apps: apps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func call[Req, Resp any](t *testing.T, n *testnet.Network, i int, op admin.Op[Req, Resp], req Req) (Resp, error) {
	t.Helper()
	c, err := n.Client(i)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return admin.Call(ctx, c, op, req)
}

func appInfo(t *testing.T, n *testnet.Network, i int, name string) admin.AppInfo {
	t.Helper()
	apps, err := call(t, n, i, admin.ListApps, admin.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		if a.Name == name {
			return a
		}
	}
	t.Fatalf("no app %s in %+v", name, apps)
	return admin.AppInfo{}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// impersonate starts the holder app on visor i and connects to the
// gateway with its key, as the app would.
func impersonate(t *testing.T, n *testnet.Network, i int) (*sdk.Client, string) {
	t.Helper()
	if _, err := call(t, n, i, admin.StartApp, admin.AppRequest{Name: "holder"}); err != nil {
		t.Fatal(err)
	}
	var line string
	waitFor(t, "the holder prints its key", func() bool {
		lines, err := call(t, n, i, admin.AppLogs, admin.LogsRequest{Name: "holder"})
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "key=") {
				line = l
			}
		}
		return line != ""
	})
	var key, server, vis, port, join string
	if _, err := fmt.Sscanf(line, "key=%s server=%s visor=%s port=%s join=%s", &key, &server, &vis, &port, &join); err != nil && runtime.GOOS == "linux" {
		t.Fatalf("%q: %v", line, err)
	}
	if vis != n.Nodes[i].PK().Hex() || server != n.Nodes[i].AppServerAddr() {
		t.Fatalf("the app was told visor %s at %s", vis, server)
	}
	p, _ := strconv.Atoi(port)
	c, err := sdk.New(sdk.Env{Key: key, Server: server, Visor: n.Nodes[i].PK(), Port: uint16(p), Join: join})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, key
}

func holderAt(port uint16) visor.AppConfig {
	return visor.AppConfig{App: "holder", Port: port, Args: []string{}}
}

// SDK connections between apps on the ends of a 2-hop route are proper
// net.Conns.
func TestSDKConnOverRoute(t *testing.T) {
	n := startNet(t, 3, func(i int, _ []cipher.PubKey) []visor.AppConfig {
		return []visor.AppConfig{holderAt(uint16(10 + i))}
	})
	a, _ := impersonate(t, n, 0)
	c, _ := impersonate(t, n, 2)
	l, err := c.Listen(12)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		type res struct {
			c   net.Conn
			err error
		}
		ch := make(chan res, 1)
		go func() {
			c, err := l.Accept()
			ch <- res{c, err}
		}()
		c1, err = a.Dial(context.Background(), n.Nodes[2].PK(), 12)
		r := <-ch
		if err == nil {
			err = r.err
		}
		if err != nil {
			return nil, nil, nil, err
		}
		if got := c1.RemoteAddr().String(); got != n.Nodes[2].PK().Hex()+":12" {
			return nil, nil, nil, fmt.Errorf("remote address %s", got)
		}
		return c1, r.c, func() { c1.Close(); r.c.Close() }, nil
	})
}

// An app may listen only on its own port.
func TestListenOnlyOwnPort(t *testing.T) {
	n := startNet(t, 2, func(i int, _ []cipher.PubKey) []visor.AppConfig { return []visor.AppConfig{holderAt(20)} })
	a, _ := impersonate(t, n, 0)
	if _, err := a.Listen(21); err == nil {
		t.Fatal("listened on another app's port")
	}
	l, err := a.Listen(20)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// rawCall makes one JSON-RPC call to the gateway.
func rawCall(t *testing.T, server, method string, args, reply any) error {
	t.Helper()
	conn, err := net.Dial("tcp", server)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonrpc.NewClient(conn)
	defer c.Close()
	return c.Call(method, args, reply)
}

// dataSocket opens a data socket and returns the gateway's first line.
func dataSocket(t *testing.T, server, key string, id uint32) string {
	t.Helper()
	conn, err := net.Dial("tcp", server)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "%s %s %d\n", appproto.DataPrefix, key, id)
	line, _ := bufio.NewReader(conn).ReadString('\n')
	return line
}

// A wrong key, another app's key on its connections, and the key of a
// stopped app get nothing.
func TestForeignKeysGetNothing(t *testing.T) {
	n := startNet(t, 2, func(i int, _ []cipher.PubKey) []visor.AppConfig {
		if i == 1 {
			return []visor.AppConfig{{App: "echo", Port: 30, AutoStart: true, Args: []string{}}}
		}
		return []visor.AppConfig{holderAt(31)}
	})
	server := n.Nodes[0].AppServerAddr()
	var wrong [16]byte
	rand.Read(wrong[:])
	wrongKey := fmt.Sprintf("%x", wrong)
	var cr appproto.ConnReply
	if err := rawCall(t, server, wrongKey+".Dial", appproto.DialArgs{PK: n.Nodes[1].PK().Hex(), Port: 30}, &cr); err == nil {
		t.Fatal("a made-up key dialled")
	}

	a, key := impersonate(t, n, 0)
	waitFor(t, "echo listens", func() bool { return appInfo(t, n, 1, "echo").State == "running" })
	var conn net.Conn
	waitFor(t, "dial the echo app", func() bool {
		var err error
		conn, err = a.Dial(context.Background(), n.Nodes[1].PK(), 30)
		return err == nil
	})
	msg := []byte("through the data socket")
	conn.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != string(msg) {
		t.Fatalf("echo: %q %v", got, err)
	}
	conn.Close()

	// A second connection, then its id tried with a wrong key and twice.
	if err := rawCall(t, server, key+".Dial", appproto.DialArgs{PK: n.Nodes[1].PK().Hex(), Port: 30}, &cr); err != nil {
		t.Fatal(err)
	}
	if line := dataSocket(t, server, wrongKey, cr.Conn); !strings.HasPrefix(line, "ERR") {
		t.Fatalf("a wrong key attached to connection %d: %q", cr.Conn, line)
	}
	// Without a data socket the connection works over RPC calls.
	var wr appproto.WriteReply
	if err := rawCall(t, server, key+".Write", appproto.WriteArgs{Conn: cr.Conn, Data: []byte("rpc")}, &wr); err != nil || wr.N != 3 {
		t.Fatalf("Write: %v %+v", err, wr)
	}
	var rr appproto.ReadReply
	if err := rawCall(t, server, key+".Read", appproto.ReadArgs{Conn: cr.Conn, N: 10}, &rr); err != nil || string(rr.Data) != "rpc" {
		t.Fatalf("Read: %v %q", err, rr.Data)
	}
	if err := rawCall(t, server, key+".CloseConn", appproto.CloseArgs{Conn: cr.Conn}, &appproto.Empty{}); err != nil {
		t.Fatal(err)
	}

	// Once the app stops, its key is dead.
	if _, err := call(t, n, 0, admin.StopApp, admin.AppRequest{Name: "holder"}); err != nil {
		t.Fatal(err)
	}
	if err := rawCall(t, server, key+".Dial", appproto.DialArgs{PK: n.Nodes[1].PK().Hex(), Port: 30}, &cr); err == nil {
		t.Fatal("a stopped app's key dialled")
	}
	if _, err := a.Listen(31); err == nil {
		t.Fatal("a stopped app's key listened")
	}
}

// Apps run with their logs collected; stopping the visor stops them all,
// even one that ignores SIGTERM; one that exits with an error is reported.
func TestAppLifecycle(t *testing.T) {
	n := startNet(t, 2, func(i int, _ []cipher.PubKey) []visor.AppConfig {
		if i == 1 {
			return nil
		}
		return []visor.AppConfig{
			{App: "echo", Port: 40, AutoStart: true, Args: []string{}},
			{App: "stubborn", Port: 41, AutoStart: true, Args: []string{}},
			{App: "missing", Port: 42, Args: []string{}},
		}
	})
	waitFor(t, "echo logs", func() bool {
		lines, _ := call(t, n, 0, admin.AppLogs, admin.LogsRequest{Name: "echo"})
		return len(lines) > 0 && strings.HasPrefix(lines[len(lines)-1], "echo listening on "+n.Nodes[0].PK().Hex()+":40")
	})
	waitFor(t, "stubborn runs", func() bool {
		lines, _ := call(t, n, 0, admin.AppLogs, admin.LogsRequest{Name: "stubborn"})
		return len(lines) > 0
	})
	echo, stubborn := appInfo(t, n, 0, "echo"), appInfo(t, n, 0, "stubborn")
	if echo.State != "running" || stubborn.State != "running" || echo.PID == 0 {
		t.Fatalf("apps: %+v %+v", echo, stubborn)
	}
	if _, err := call(t, n, 0, admin.StartApp, admin.AppRequest{Name: "echo"}); err == nil {
		t.Fatal("started a running app twice")
	}
	if _, err := call(t, n, 0, admin.StartApp, admin.AppRequest{Name: "missing"}); err == nil {
		t.Fatal("started an app with no program")
	}
	if _, err := call(t, n, 0, admin.StartApp, admin.AppRequest{Name: "nope"}); !admin.IsCode(err, admin.CodeNotFound) {
		t.Fatalf("unknown app: %v", err)
	}
	logFile, err := os.ReadFile(filepath.Join(n.Nodes[0].Config.LocalPath, "apps", "echo.log"))
	if err != nil || !strings.Contains(string(logFile), "echo listening") {
		t.Fatalf("log file: %q %v", logFile, err)
	}

	// Stop the whole network: no app outlives its visor.
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range []int{echo.PID, stubborn.PID} {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("app pid %d outlived its visor: %v", pid, err)
		}
	}
}

// The Python example (standard library only) talks the raw protocol to an
// echo app two hops away.
func TestPythonExample(t *testing.T) {
	testtool.Need(t, "python3")
	example, err := filepath.Abs("../../examples/python/echo_client.py")
	if err != nil {
		t.Fatal(err)
	}
	var pks []cipher.PubKey
	n := startNet(t, 3, func(i int, all []cipher.PubKey) []visor.AppConfig {
		pks = all
		switch i {
		case 0:
			return []visor.AppConfig{{App: "echo_client.py", Port: 50, Args: []string{all[2].Hex(), "51", "hello over two hops"}}}
		case 2:
			return []visor.AppConfig{{App: "echo", Port: 51, AutoStart: true, Args: []string{}}}
		}
		return nil
	})
	if err := os.Symlink(example, filepath.Join(filepath.Dir(n.Nodes[0].ConfigPath), "apps", "echo_client.py")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "echo runs", func() bool { return appInfo(t, n, 2, "echo").State == "running" })
	if _, err := call(t, n, 0, admin.StartApp, admin.AppRequest{Name: "echo_client.py"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the example exits", func() bool { return appInfo(t, n, 0, "echo_client.py").State != "running" })
	lines, _ := call(t, n, 0, admin.AppLogs, admin.LogsRequest{Name: "echo_client.py"})
	info := appInfo(t, n, 0, "echo_client.py")
	out, _ := json.Marshal(lines)
	if info.State != "stopped" || !strings.Contains(string(out), "echoed: hello over two hops") || !strings.Contains(string(out), "connected to "+pks[2].Hex()+":51") {
		t.Fatalf("example: %+v\n%s", info, out)
	}
}

// A connection used over RPC calls for a handshake, then joined to a local
// socket: the visor relays the socket itself; what is not a stream socket,
// and what already has a data socket, is refused.
func TestJoin(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the join socket is Linux's")
	}
	n := startNet(t, 3, func(i int, _ []cipher.PubKey) []visor.AppConfig {
		if i == 2 {
			return []visor.AppConfig{{App: "echo", Port: 60, AutoStart: true, Args: []string{}}}
		}
		return []visor.AppConfig{{App: "holder", Port: 61, Args: []string{}}}
	})
	a, _ := impersonate(t, n, 0)
	waitFor(t, "echo runs", func() bool { return appInfo(t, n, 2, "echo").State == "running" })
	var rc *sdk.RPCConn
	waitFor(t, "dial the echo app", func() bool {
		var err error
		rc, err = a.DialRPC(context.Background(), n.Nodes[2].PK(), 60)
		return err == nil
	})
	// A handshake over calls.
	rc.Write([]byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(rc, got); err != nil || string(got) != "hello" {
		t.Fatalf("over RPC: %q %v", got, err)
	}
	// Not a socket: refused, and nothing is consumed.
	f, err := os.CreateTemp(t.TempDir(), "notasocket")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := rc.Join(wrapFile{f}); err == nil {
		t.Fatal("joined a regular file")
	}
	// A socket: the visor relays it.
	mine, theirs := loopback.Pair(t)
	if err := rc.Join(theirs); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 8<<20)
	rand.Read(msg)
	go mine.Write(msg)
	echoed := make([]byte, len(msg))
	if _, err := io.ReadFull(mine, echoed); err != nil || string(echoed) != string(msg) {
		t.Fatalf("through the joined socket: %v", err)
	}
	// Half-close passes through: the echo app sees EOF and closes; we read EOF.
	mine.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(mine); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %d bytes, %v", len(rest), err)
	}

	// A connection with a data socket cannot be joined too.
	dc, err := a.DialRPC(context.Background(), n.Nodes[2].PK(), 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dc.Attach(); err != nil {
		t.Fatal(err)
	}
	_, other := loopback.Pair(t)
	if err := dc.Join(other); err == nil {
		t.Fatal("joined a connection that has a data socket")
	}
}

// wrapFile is a net.Conn over a file (only its descriptor matters here).
type wrapFile struct{ *os.File }

func (wrapFile) LocalAddr() net.Addr  { return nil }
func (wrapFile) RemoteAddr() net.Addr { return nil }
