package appserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/skyfleet/skywire/internal/appproto"
)

// listenJoin opens the join socket in the abstract namespace (no file;
// gone with the process). Anyone on the machine may connect, as to the TCP
// gateway: the app key is what admits them.
func listenJoin() net.Listener {
	ln, err := net.Listen("unix", "@skywire-join-"+newKey())
	if err != nil {
		return nil
	}
	return ln
}

// serveJoin takes one socket an app hands over and relays it to the app's
// connection. done frees the join's admission slot once the request is
// answered: a relay may last for hours.
func (s *Server) serveJoin(_ context.Context, c net.Conn, done func()) {
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return
	}
	uc.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 256)
	oob := make([]byte, syscall.CmsgSpace(4*4)) // room to receive (and close) a few
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	var fds []int
	if msgs, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil {
		for _, m := range msgs {
			if got, err := syscall.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	for _, fd := range fds {
		syscall.CloseOnExec(fd) // never into an app started meanwhile
	}
	fail := func(format string, args ...any) {
		for _, fd := range fds {
			syscall.Close(fd)
		}
		fmt.Fprintf(uc, "ERR "+format+"\n", args...)
	}
	line := string(buf[:n])
	f := strings.Fields(line)
	if !strings.HasSuffix(line, "\n") || len(f) != 3 || f[0] != appproto.JoinPrefix {
		fail("malformed join request")
		return
	}
	if len(fds) != 1 {
		fail("a join carries one socket, got %d", len(fds))
		return
	}
	if typ, err := syscall.GetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || typ != syscall.SOCK_STREAM {
		fail("not a stream socket")
		return
	}
	file := os.NewFile(uintptr(fds[0]), "joined socket")
	nc, err := net.FileConn(file) // a dup: the file is ours to close
	file.Close()
	fds = nil
	if err != nil {
		fail("%v", err)
		return
	}
	sess, id, ac, err := s.lookupAttach(f[1], f[2])
	if err != nil {
		nc.Close()
		fail("%v", err)
		return
	}
	if _, err := uc.Write([]byte("OK\n")); err != nil {
		nc.Close()
		sess.closeConn(id)
		return
	}
	uc.Close()
	done()
	s.joined(sess, id, ac, nc)
}
