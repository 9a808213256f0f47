package appserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/internal/logring"
	"github.com/skyfleet/skywire/router"
)

// App states.
const (
	StateStopped = "stopped"
	StateRunning = "running"
	StateErrored = "errored" // it exited with an error
)

const (
	logLines  = 1000
	stopGrace = 5 * time.Second
)

// app is one configured app and its current run.
type app struct {
	cfg AppConfig

	// guarded by Server.mu
	state    string
	cmd      *exec.Cmd
	sess     *session
	started  time.Time
	exitErr  string
	status   string // the running app's own words (SetStatus)
	starts   int    // runs begun (started or attached)
	runArgs  []string
	logs     *logring.Ring
	exited   chan struct{} // closed when the current run's process is reaped
	stopping bool
	extPID   int // an attached process (Attach): not started by the visor, cmd nil
}

// pid is the running app's process id.
func (a *app) pid() int {
	if a.cmd != nil {
		return a.cmd.Process.Pid
	}
	return a.extPID
}

// Info describes an app.
type Info struct {
	Name      string    `json:"name"`
	Port      uint16    `json:"port"`
	AutoStart bool      `json:"auto_start"`
	Args      []string  `json:"args"`
	State     string    `json:"state"`
	PID       int       `json:"pid,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Error     string    `json:"error,omitempty"`
	Status    string    `json:"status,omitempty"`
	// Starts is how many times the visor started it (restarts are the
	// rest).
	Starts int `json:"starts"`
}

// ErrUnknownApp: no app of that name is configured.
var ErrUnknownApp = errors.New("no such app")

// ErrNotRunning is returned by Stop for an app that does not run.
var ErrNotRunning = errors.New("is not running")

// List describes every app, by name.
func (s *Server) List() []Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Info, 0, len(s.apps))
	for _, a := range s.apps {
		out = append(out, s.infoLocked(a))
	}
	slices.SortFunc(out, func(a, b Info) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	return out
}

func (s *Server) infoLocked(a *app) Info {
	i := Info{Name: a.cfg.Name, Port: a.cfg.Port, AutoStart: a.cfg.AutoStart, Args: a.cfg.Args, State: a.state, Error: a.exitErr, Starts: a.starts}
	if a.state == StateRunning {
		i.PID, i.Started, i.Args, i.Status = a.pid(), a.started, a.runArgs, a.status
	}
	return i
}

// Info describes one app.
func (s *Server) Info(name string) (Info, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[name]
	if a == nil {
		return Info{}, fmt.Errorf("%w %q", ErrUnknownApp, name)
	}
	return s.infoLocked(a), nil
}

// Add adds an app (a config reload); it starts as any other would.
func (s *Server) Add(cfg AppConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apps[cfg.Name] != nil {
		return fmt.Errorf("app %q exists already", cfg.Name)
	}
	s.apps[cfg.Name] = &app{cfg: cfg, state: StateStopped, logs: logring.New(logLines)}
	s.updates.Notify()
	return nil
}

// Remove stops an app and forgets it (a config reload).
func (s *Server) Remove(name string) error {
	if err := s.Stop(name); err != nil && !errors.Is(err, ErrNotRunning) {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.apps[name] == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, name)
	}
	delete(s.apps, name)
	s.updates.Notify()
	return nil
}

// SetConfig replaces an app's configuration (auto_start, args) for its
// next start.
func (s *Server) SetConfig(cfg AppConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[cfg.Name]
	if a == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, cfg.Name)
	}
	a.cfg = cfg
	s.updates.Notify()
	return nil
}

// Changed returns a channel that closes when an app's state, status,
// error or config next changes (take it before reading List).
func (s *Server) Changed() <-chan struct{} { return s.updates.Wait() }

// Logs returns up to n of the app's last output lines.
func (s *Server) Logs(name string, n int) ([]string, error) {
	s.mu.Lock()
	a := s.apps[name]
	s.mu.Unlock()
	if a == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownApp, name)
	}
	return a.logs.Last(n), nil
}

// FollowLogs calls fn with up to n of the app's last output lines, then
// with every new one (across restarts of the app), until ctx ends or fn
// fails.
func (s *Server) FollowLogs(ctx context.Context, name string, n int, fn func(string) error) error {
	s.mu.Lock()
	a := s.apps[name]
	s.mu.Unlock()
	if a == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, name)
	}
	return a.logs.Follow(ctx, n, fn)
}

func isBuiltin(name string) bool {
	_, ok := appproto.LookupBuiltin(name)
	return ok
}

// Start starts an app with its configured args (or args, if not nil).
func (s *Server) Start(name string, args []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[name]
	switch {
	case a == nil:
		return fmt.Errorf("%w %q (see app ls)", ErrUnknownApp, name)
	case s.closed:
		return errors.New("the visor is stopping")
	case a.state == StateRunning:
		return fmt.Errorf("%s is already running (pid %d)", name, a.pid())
	}
	if args == nil {
		args = a.cfg.Args
	}
	bin, argv := filepath.Join(s.cfg.AppsPath, name), args
	var secretEnv []string
	if isBuiltin(name) { // its passcode goes in its environment, not on its command line
		var rest []string
		rest, secretEnv = appproto.SplitSecrets(args)
		bin, argv = s.cfg.Executable, append([]string{name}, rest...)
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: no program: %w", name, err)
	}
	dir := filepath.Join(s.cfg.LocalPath, "apps", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(s.cfg.LocalPath, "apps", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	sess := &session{s: s, app: a, key: newKey(), conns: map[uint32]*appConn{}, listeners: map[uint32]*router.Listener{}}
	cmd := exec.Command(bin, argv...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		appproto.EnvKey+"="+sess.key,
		appproto.EnvServer+"="+s.Addr(),
		appproto.EnvVisor+"="+s.cfg.PK.Hex(),
		appproto.EnvPort+"="+strconv.Itoa(int(a.cfg.Port)),
	)
	if j := s.joinAddr(); j != "" {
		cmd.Env = append(cmd.Env, appproto.EnvJoin+"="+j)
	}
	cmd.Env = append(cmd.Env, secretEnv...)
	cmd.SysProcAttr = childAttrs()
	out, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("%s: %w", name, err)
	}
	s.byKey[sess.key] = sess
	a.state, a.cmd, a.sess, a.started, a.exitErr, a.runArgs, a.stopping, a.status = StateRunning, cmd, sess, time.Now(), "", args, false, ""
	a.starts++
	a.exited = make(chan struct{})
	s.updates.Notify()
	log := s.log.With(zap.String("app", name), zap.Int("pid", cmd.Process.Pid))
	log.Info("app started", zap.Strings("args", appproto.MaskSecrets(args)))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.collect(a, out, logFile)
		err := cmd.Wait()
		logFile.Close()
		s.exited(a, sess, err, log)
	}()
	return nil
}

// collect copies an app's output into its log ring and file.
func (s *Server) collect(a *app, out io.Reader, file *os.File) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		a.logs.Add(line)
		fmt.Fprintln(file, line)
	}
	io.Copy(io.Discard, out)
}

// exited records the end of an app's run.
func (s *Server) exited(a *app, sess *session, err error, log *zap.Logger) {
	sess.revoke()
	s.mu.Lock()
	delete(s.byKey, sess.key)
	a.state = StateStopped
	if err != nil && !a.stopping {
		a.state, a.exitErr = StateErrored, err.Error()
		if last := a.logs.Last(1); len(last) > 0 {
			a.exitErr += ": " + last[0]
		}
	}
	close(a.exited)
	s.updates.Notify()
	state, exitErr := a.state, a.exitErr // a Start may follow at once
	s.mu.Unlock()
	if state == StateErrored {
		log.Warn("app exited", zap.String("err", exitErr))
	} else {
		log.Info("app stopped")
	}
}

// Stop stops an app: SIGTERM (interrupt on Windows), then a kill after a
// grace period.
func (s *Server) Stop(name string) error {
	s.mu.Lock()
	a := s.apps[name]
	s.mu.Unlock()
	if a == nil {
		return fmt.Errorf("%w %q", ErrUnknownApp, name)
	}
	if !s.stop(a) {
		return fmt.Errorf("%s %w", name, ErrNotRunning)
	}
	return nil
}

func (s *Server) stop(a *app) bool {
	s.mu.Lock()
	if a.state != StateRunning {
		s.mu.Unlock()
		return false
	}
	a.stopping = true
	cmd, exited, pid := a.cmd, a.exited, a.extPID
	s.mu.Unlock()
	proc := (*os.Process)(nil)
	if cmd != nil {
		proc = cmd.Process
	} else if p, err := os.FindProcess(pid); err == nil {
		proc = p // an attached process ends its run by closing its control connection
	}
	if proc != nil {
		terminate(proc)
	}
	select {
	case <-exited:
	case <-time.After(stopGrace):
		if proc != nil {
			proc.Kill()
		}
		<-exited
	}
	return true
}

// Attach registers a process the visor did not start — `vpn-client` run by
// hand — as the running app name, and returns the environment it runs with
// (appproto's variables) and its working directory. The run ends when the
// process's control connections close, or Stop signals pid.
func (s *Server) Attach(name string, pid int) (env map[string]string, dir string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[name]
	switch {
	case a == nil:
		return nil, "", fmt.Errorf("%w %q (an app runs only if the config lists it: see app ls)", ErrUnknownApp, name)
	case s.closed:
		return nil, "", errors.New("the visor is stopping")
	case a.state == StateRunning:
		return nil, "", fmt.Errorf("%s is already running (pid %d)", name, a.pid())
	case pid <= 0:
		return nil, "", fmt.Errorf("attaching %s: no process id", name)
	}
	dir = filepath.Join(s.cfg.LocalPath, "apps", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	sess := &session{s: s, app: a, key: newKey(), conns: map[uint32]*appConn{}, listeners: map[uint32]*router.Listener{}}
	s.byKey[sess.key] = sess
	a.state, a.cmd, a.sess, a.started, a.exitErr, a.runArgs, a.stopping, a.status, a.extPID = StateRunning, nil, sess, time.Now(), "", nil, false, "", pid
	a.starts++
	a.exited = make(chan struct{})
	s.updates.Notify()
	s.log.Info("app attached", zap.String("app", name), zap.Int("pid", pid))
	env = map[string]string{
		appproto.EnvKey:    sess.key,
		appproto.EnvServer: s.Addr(),
		appproto.EnvVisor:  s.cfg.PK.Hex(),
		appproto.EnvPort:   strconv.Itoa(int(a.cfg.Port)),
	}
	if j := s.joinAddr(); j != "" {
		env[appproto.EnvJoin] = j
	}
	return env, dir, nil
}

// detach ends the runs of attached apps whose control connection closed.
func (s *Server) detach(keys map[string]bool) {
	for key := range keys {
		s.mu.Lock()
		sess := s.byKey[key]
		s.mu.Unlock()
		if sess == nil {
			continue
		}
		a := sess.app
		s.mu.Lock()
		attached := a.sess == sess && a.cmd == nil && a.state == StateRunning
		s.mu.Unlock()
		if attached {
			s.exited(a, sess, nil, s.log.With(zap.String("app", a.cfg.Name), zap.Int("pid", a.extPID)))
		}
	}
}
