package cli

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// portOwner finds the process listening on TCP port (or bound to UDP
// port): /proc/net/{tcp,tcp6,udp,udp6} give the socket's inode, a scan of
// /proc/*/fd the process holding it. It returns 0 when it cannot tell
// (another user's process, without root).
func portOwner(port int) (pid int, name string) {
	inodes := map[string]bool{}
	for _, f := range []string{"tcp", "tcp6", "udp", "udp6"} {
		fh, err := os.Open("/proc/net/" + f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			p, err := strconv.ParseInt(hexPort, 16, 32)
			listening := fields[3] == "0A" || strings.HasPrefix(f, "udp") // TCP_LISTEN, or any bound UDP socket
			if ok && err == nil && int(p) == port && listening {
				inodes[fields[9]] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0, ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			pidText := strings.Split(fd, "/")[2]
			pid, _ = strconv.Atoi(pidText)
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			return pid, strings.TrimSpace(string(comm))
		}
	}
	return 0, ""
}
