//go:build !windows

package dmsgpty

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

const supported = true

var signalsByName = map[string]syscall.Signal{
	"INT": syscall.SIGINT, "TERM": syscall.SIGTERM, "HUP": syscall.SIGHUP, "KILL": syscall.SIGKILL, "QUIT": syscall.SIGQUIT,
}

// unixProc is a program in its own process group (its own session on a
// pty), so that kill and signals reach its children too.
type unixProc struct {
	cmd      *exec.Cmd
	in       io.WriteCloser // the pty's master, or the stdin pipe
	tty      *os.File       // the pty's master (nil on pipes)
	output   chan struct{}  // closed when every output copy has ended
	closeOut func()         // closes the output's read ends (after wait gives up on them)
	killOnce sync.Once
}

// start runs spec's program.
func start(spec startSpec) (process, error) {
	var name string
	var args []string
	switch spec.req.Mode {
	case ModeShell:
		name = spec.shell
		args = []string{"-" + filepath.Base(spec.shell)} // a login shell, by the argv[0] convention
	default:
		name, args = spec.req.Argv[0], spec.req.Argv
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("cannot run %s on this visor: %w", name, err)
	}
	cmd := &exec.Cmd{Path: path, Args: args, Dir: spec.dir, Env: spec.env}
	p := &unixProc{cmd: cmd, output: make(chan struct{})}
	if spec.req.Mode == ModeShell || spec.req.TTY {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		f, err := pty.StartWithAttrs(cmd, &pty.Winsize{Rows: spec.req.Rows, Cols: spec.req.Cols}, cmd.SysProcAttr)
		if err != nil {
			return nil, fmt.Errorf("starting %s on a pty: %w", path, err)
		}
		if f, err = pollable(f); err != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			return nil, fmt.Errorf("the pty of %s: %w", path, err)
		}
		p.in, p.tty = f, f
		p.closeOut = func() { f.Close() }
		go func() {
			defer close(p.output)
			copyOutput(spec.stdout, f)
		}()
		return p, nil
	}
	// Pipes: stdout and stderr apart, as a script expects.
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	p.in = inW
	p.closeOut = func() { outR.Close(); errR.Close() }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyOutput(spec.stdout, outR) }()
	go func() { defer wg.Done(); copyOutput(spec.stderr, errR) }()
	go func() { wg.Wait(); close(p.output) }()
	return p, nil
}

// pollable returns the pty master f as a file in Go's poller (f is
// closed): creack/pty leaves it in blocking mode, where a Read blocked on a
// terminal that a background program holds open could never be ended by
// Close.
func pollable(f *os.File) (*os.File, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	fd := -1
	var derr error
	sc.Control(func(raw uintptr) { fd, derr = unix.Dup(int(raw)) })
	f.Close()
	if derr != nil {
		return nil, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}

// ioctl runs fn on f's descriptor without taking it out of the poller
// (as f.Fd would).
func ioctl(f *os.File, fn func(fd int) error) error {
	sc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := sc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// copyOutput relays r to w in frame-sized pieces until r ends (EOF, or EIO
// from a pty whose last user left).
func copyOutput(w io.Writer, r io.Reader) {
	buf := make([]byte, MaxPayload)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				io.Copy(io.Discard, r) // keep the program from blocking on a full pipe until it is killed
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *unixProc) stdin() io.Writer { return p.in }

func (p *unixProc) closeStdin() {
	if p.tty != nil {
		p.tty.Write([]byte{4}) // ^D: end of input for the terminal's reader
		return
	}
	p.in.Close()
}

func (p *unixProc) resize(rows, cols uint16) {
	if p.tty != nil && rows > 0 && cols > 0 {
		ioctl(p.tty, func(fd int) error {
			return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		})
	}
}

func (p *unixProc) signal(name string) {
	if sig, ok := signalsByName[name]; ok {
		syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// kill hangs up the program's process group and, on a pty, the terminal's
// foreground group too (a shell's job runs in its own), then kills them.
func (p *unixProc) kill() {
	p.killOnce.Do(func() {
		groups := []int{p.cmd.Process.Pid}
		if p.tty != nil {
			var fg int
			if ioctl(p.tty, func(fd int) (err error) { fg, err = unix.IoctlGetInt(fd, unix.TIOCGPGRP); return err }) == nil && fg > 1 && fg != groups[0] {
				groups = append(groups, fg)
			}
		}
		for _, g := range groups {
			syscall.Kill(-g, syscall.SIGHUP)
			syscall.Kill(-g, syscall.SIGCONT)
		}
		time.AfterFunc(killGrace, func() {
			for _, g := range groups {
				syscall.Kill(-g, syscall.SIGKILL)
			}
		})
	})
}

func (p *unixProc) wait(s *hostSession) int {
	err := p.cmd.Wait()
	if !drain(s, p.output) {
		p.closeOut()
		<-p.output
	}
	p.in.Close()
	if p.tty != nil {
		p.tty.Close()
	}
	return exitCode(p.cmd.ProcessState, err)
}

// exitCode is a finished program's status: its exit code, or 128+n if
// signal n ended it (as shells report it).
func exitCode(ps *os.ProcessState, err error) int {
	if ps == nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return -1
		}
		ps = ee.ProcessState
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// loginShell is the shell /etc/passwd gives this process's user.
func loginShell() string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return ""
	}
	defer f.Close()
	uid := strconv.Itoa(os.Getuid())
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 7 && fields[2] == uid {
			return fields[6]
		}
	}
	return ""
}
