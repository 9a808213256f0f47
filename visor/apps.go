package visor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/visor/appserver"
)

// ProxyClientApp is the app `proxy start` configures.
const ProxyClientApp = "skysocks-client"

// ProxyServerApp is the skysocks server, whose passcode SetPasscode sets.
const ProxyServerApp = "skysocks"

func appConfigs(apps []AppConfig) []appserver.AppConfig {
	out := make([]appserver.AppConfig, len(apps))
	for i, a := range apps {
		out[i] = appserver.AppConfig{Name: a.App, Port: a.Port, AutoStart: a.AutoStart, Args: a.Args}
	}
	return out
}

func appInfo(i appserver.Info) admin.AppInfo {
	return admin.AppInfo{Name: i.Name, Port: i.Port, AutoStart: i.AutoStart, Args: maskSecrets(i.Args), State: i.State, PID: i.PID, Started: i.Started, Error: i.Error, Status: i.Status}
}

func appError(err error) error {
	if errors.Is(err, appserver.ErrUnknownApp) {
		return admin.Errorf(admin.CodeNotFound, "%v", err)
	}
	return admin.Errorf(admin.CodeConflict, "%v", err)
}

// updateApp changes the app's entry in the config, saves the file, and
// gives the app server the new entry.
func (v *Visor) updateApp(name string, change func(a *AppConfig)) error {
	v.cfgMu.Lock()
	defer v.cfgMu.Unlock()
	i := slices.IndexFunc(v.cfg.Apps, func(a AppConfig) bool { return a.App == name })
	if i < 0 {
		return admin.Errorf(admin.CodeNotFound, "%v %q", appserver.ErrUnknownApp, name)
	}
	next := *v.cfg
	next.Apps = slices.Clone(v.cfg.Apps)
	change(&next.Apps[i])
	if v.configPath != "" {
		if err := next.Save(v.configPath); err != nil {
			return admin.Errorf(admin.CodeInternal, "saving the config: %v", err)
		}
	}
	v.cfg.Apps = next.Apps
	a := next.Apps[i]
	return v.apps.SetConfig(appserver.AppConfig{Name: a.App, Port: a.Port, AutoStart: a.AutoStart, Args: a.Args})
}

func (v *Visor) registerAppAPI() {
	admin.Handle(v.api, admin.ListApps, func(context.Context, admin.Empty) ([]admin.AppInfo, error) {
		out := []admin.AppInfo{}
		for _, i := range v.apps.List() {
			out = append(out, appInfo(i))
		}
		return out, nil
	})
	admin.Handle(v.api, admin.StartApp, func(ctx context.Context, req admin.AppRequest) (admin.AppInfo, error) {
		if err := v.apps.Start(req.Name, nil); err != nil {
			return admin.AppInfo{}, appError(err)
		}
		return v.startedApp(ctx, req.Name)
	})
	admin.Handle(v.api, admin.StopApp, func(_ context.Context, req admin.AppRequest) (admin.AppInfo, error) {
		if err := v.apps.Stop(req.Name); err != nil {
			return admin.AppInfo{}, appError(err)
		}
		i, err := v.apps.Info(req.Name)
		return appInfo(i), err
	})
	admin.Handle(v.api, admin.SetAutoStart, func(_ context.Context, req admin.AutoStartRequest) (admin.AppInfo, error) {
		if err := v.updateApp(req.Name, func(a *AppConfig) { a.AutoStart = req.On }); err != nil {
			return admin.AppInfo{}, err
		}
		i, err := v.apps.Info(req.Name)
		return appInfo(i), err
	})
	admin.Handle(v.api, admin.AppLogs, func(_ context.Context, req admin.LogsRequest) ([]string, error) {
		n := req.Lines
		if n <= 0 {
			n = 100
		}
		lines, err := v.apps.Logs(req.Name, n)
		if err != nil {
			return nil, appError(err)
		}
		return lines, nil
	})
	admin.Handle(v.api, admin.AttachApp, func(_ context.Context, req admin.AttachRequest) (admin.AttachReply, error) {
		env, dir, err := v.apps.Attach(req.Name, req.PID)
		if err != nil {
			return admin.AttachReply{}, appError(err)
		}
		return admin.AttachReply{Env: env, Dir: dir}, nil
	})
	admin.Handle(v.api, admin.SetPasscode, func(_ context.Context, req admin.PasscodeRequest) (admin.AppInfo, error) {
		if req.Name != ProxyServerApp {
			return admin.AppInfo{}, admin.Errorf(admin.CodeBadRequest, "only %s takes a passcode this way (skysocks-client's is set with `proxy start`)", ProxyServerApp)
		}
		if err := v.updateApp(req.Name, func(a *AppConfig) { a.Args = withFlag(a.Args, "--passcode", req.Passcode) }); err != nil {
			return admin.AppInfo{}, err
		}
		if i, err := v.apps.Info(req.Name); err == nil && i.State == appserver.StateRunning {
			v.apps.Stop(req.Name)
			if err := v.apps.Start(req.Name, nil); err != nil {
				return admin.AppInfo{}, appError(err)
			}
		}
		i, err := v.apps.Info(req.Name)
		return appInfo(i), err
	})
	admin.Handle(v.api, admin.StartProxy, func(ctx context.Context, req admin.ProxyRequest) (admin.AppInfo, error) {
		if err := req.Server.Check(); err != nil {
			return admin.AppInfo{}, admin.Errorf(admin.CodeBadRequest, "%v", err)
		}
		for _, a := range []string{req.Addr, req.HTTP} {
			if a != "" && a != "off" {
				if _, _, err := net.SplitHostPort(a); err != nil {
					return admin.AppInfo{}, admin.Errorf(admin.CodeBadRequest, "address %q: %v", a, err)
				}
			}
		}
		err := v.updateApp(ProxyClientApp, func(a *AppConfig) {
			a.AutoStart = true // the proxy comes back after a restart, until `proxy stop`
			a.Args = withFlag(a.Args, "--srv", req.Server.Hex())
			a.Args = withFlag(a.Args, "--passcode", req.Passcode)
			if req.Addr != "" {
				a.Args = withFlag(a.Args, "--addr", req.Addr)
			}
			switch req.HTTP {
			case "":
			case "off":
				a.Args = withFlag(a.Args, "--http", "")
			default:
				a.Args = withFlag(a.Args, "--http", req.HTTP)
			}
		})
		if err != nil {
			return admin.AppInfo{}, err
		}
		v.apps.Stop(ProxyClientApp) // not running is fine
		if err := v.apps.Start(ProxyClientApp, nil); err != nil {
			return admin.AppInfo{}, appError(err)
		}
		return v.startedApp(ctx, ProxyClientApp)
	})
}

// maskSecrets hides the values of the apps' secret flags in args.
func maskSecrets(args []string) []string { return appproto.MaskSecrets(args) }

// withFlag sets flag to value in args (replacing an existing "flag value"
// or "flag=value"); an empty value removes the flag.
func withFlag(args []string, flag, value string) []string {
	out := make([]string, 0, len(args)+2)
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == flag:
			i++ // drop its value too
		case len(args[i]) > len(flag) && args[i][:len(flag)+1] == flag+"=":
		default:
			out = append(out, args[i])
		}
	}
	if value == "" {
		return out
	}
	return append(out, flag, value)
}

// startupGrace is how long a start waits to see whether the app exits at
// once (a bad argument, a port in use): that is a failed start, not a
// running app.
const startupGrace = time.Second

// startedApp answers a start: the app's info once it has run startupGrace
// (or ended well), or the reason it failed before that, with its last
// output.
func (v *Visor) startedApp(ctx context.Context, name string) (admin.AppInfo, error) {
	deadline := time.NewTimer(startupGrace)
	defer deadline.Stop()
	for {
		changed := v.apps.Changed()
		i, err := v.apps.Info(name)
		if err != nil {
			return admin.AppInfo{}, appError(err)
		}
		if i.State != appserver.StateRunning && i.Error == "" {
			return appInfo(i), nil // it ran and finished, as a one-shot app does
		}
		if i.State != appserver.StateRunning {
			msg := fmt.Sprintf("%s exited at once", name)
			if i.Error != "" {
				msg += ": " + i.Error
			}
			if lines, _ := v.apps.Logs(name, 5); len(lines) > 0 {
				msg += "\nits last output:\n  " + strings.Join(lines, "\n  ")
			}
			return admin.AppInfo{}, admin.Errorf(admin.CodeConflict, "%s", msg)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return appInfo(i), nil
		case <-ctx.Done():
			return appInfo(i), nil
		}
	}
}
