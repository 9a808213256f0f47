package appserver

import (
	"context"
	"errors"
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
	if !strings.HasSuffix(line, "\n") || len(f) != 3 || (f[0] != appproto.JoinPrefix && f[0] != appproto.PacketJoinPrefix) {
		fail("malformed join request")
		return
	}
	if len(fds) != 1 {
		fail("a join carries one descriptor, got %d", len(fds))
		return
	}
	packets := f[0] == appproto.PacketJoinPrefix
	if packets {
		if err := packetDevice(fds[0]); err != nil {
			fail("%v", err)
			return
		}
	} else if typ, err := syscall.GetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || typ != syscall.SOCK_STREAM {
		fail("not a stream socket")
		return
	}
	file := os.NewFile(uintptr(fds[0]), "joined descriptor")
	fds = nil
	var nc net.Conn
	if !packets {
		nc, err = net.FileConn(file) // a dup: the file is ours to close
		file.Close()
		if err != nil {
			fail("%v", err)
			return
		}
	}
	sess, id, ac, err := s.lookupAttach(f[1], f[2])
	if err != nil {
		if nc != nil {
			nc.Close()
		} else {
			file.Close()
		}
		fail("%v", err)
		return
	}
	if _, err := uc.Write([]byte("OK\n")); err != nil {
		if nc != nil {
			nc.Close()
		} else {
			file.Close()
		}
		sess.closeConn(id)
		return
	}
	uc.SetDeadline(time.Time{})
	done()
	if packets {
		s.joinedPackets(sess, id, ac, file, uc)
		return
	}
	uc.Close()
	s.joined(sess, id, ac, nc)
}

// packetDevice checks that fd is something that reads and writes whole
// packets — a character device (a TUN) or a datagram socket — and makes
// it non-blocking, so that the runtime's poller waits on it and closing it
// ends a read.
func packetDevice(fd int) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return err
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFCHR:
	case syscall.S_IFSOCK:
		typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE)
		if err != nil || (typ != syscall.SOCK_DGRAM && typ != syscall.SOCK_SEQPACKET) {
			return errors.New("not a packet device: a socket that is not a datagram socket")
		}
	default:
		return errors.New("not a packet device (a TUN or a datagram socket)")
	}
	return syscall.SetNonblock(fd, true)
}
