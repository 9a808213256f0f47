package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// DefaultAddr is the cli_addr written by gen-config and the CLI's default
// --rpc: cli.sock in a directory only this user may write, so no other user
// can bind the name first and receive the CLI's requests:
// $XDG_RUNTIME_DIR/skywire when it is set (per user, mode 0700), else
// skywire-<uid> in the system's temporary directory (made 0700 by Listen,
// which refuses one another user owns). On Windows the temporary directory
// is the user's own.
func DefaultAddr() string {
	if runtime.GOOS == "windows" {
		return filepath.Join(os.TempDir(), "skywire", "cli.sock")
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "skywire", "cli.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("skywire-%d", os.Getuid()), "cli.sock")
}

// ErrNotOwned: a socket or its directory belongs to another user (someone
// may be squatting the name).
var ErrNotOwned = errors.New("owned by another user")

// ParseAddr tells a unix socket path from a TCP "host:port". A path is
// anything with a path separator, ending in ".sock", or written "unix:PATH".
func ParseAddr(addr string) (network, address string, err error) {
	switch {
	case addr == "":
		return "", "", errors.New("empty address")
	case strings.HasPrefix(addr, "unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:"), nil
	case strings.ContainsAny(addr, `/\`) || strings.HasSuffix(addr, ".sock"):
		return "unix", addr, nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("address %q is neither a unix socket path nor host:port", addr)
	}
	return "tcp", addr, nil
}

// maxSocketPath is the longest unix socket path the kernels we run on take.
const maxSocketPath = 104

// Listen opens the admin listener on addr. A unix socket gets mode 0600 (only
// the visor's user may connect); a stale socket file left by a crash is
// replaced, but a live one (another visor) or a non-socket file is an error.
func Listen(addr string) (net.Listener, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if network == "tcp" {
		ln, err := net.Listen("tcp", address)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", address, err)
		}
		return ln, nil
	}
	if len(address) >= maxSocketPath {
		return nil, fmt.Errorf("unix socket path %q is %d bytes, the limit is %d: use a shorter cli_addr", address, len(address), maxSocketPath-1)
	}
	if err := os.MkdirAll(filepath.Dir(address), 0o700); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", address, err)
	}
	if err := checkDir(filepath.Dir(address)); err != nil {
		return nil, fmt.Errorf("listen on %s: %w", address, err)
	}
	if err := removeStale(address); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", address, err)
	}
	// Before this chmod the socket has the umask's mode; connecting needs
	// write permission, which the usual umasks deny to others.
	if err := os.Chmod(address, 0o600); err != nil && runtime.GOOS != "windows" {
		ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", address, err)
	}
	return ln, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 && runtime.GOOS != "windows" {
		return fmt.Errorf("listen on %s: a file that is not a socket is in the way; remove it or choose another cli_addr", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	if c, err := d.DialContext(ctx, "unix", path); err == nil {
		c.Close()
		return fmt.Errorf("listen on %s: another process (another visor?) is serving this socket; stop it or choose another cli_addr", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("listen on %s: removing the stale socket: %w", path, err)
	}
	return nil
}
