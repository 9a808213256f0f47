package visor

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/transport"
	"github.com/skyfleet/skywire/visor/appserver"
)

// Reload (SIGHUP, `skywire cli visor reload`) reads the config file again
// and applies, while the visor runs, what can change without dropping the
// transports and routes that still apply: log_level, the apps and their
// arguments, transport.persistent, stcp.pk_table, hypervisors and
// routing.min_hops. Any other change is listed as needing a restart. A
// config that is not valid changes nothing: the error gives the reasons.
func (v *Visor) Reload() (admin.ReloadResult, error) {
	res := admin.ReloadResult{Applied: []string{}, NeedRestart: []string{}}
	if v.configPath == "" {
		return res, admin.Errorf(admin.CodeBadRequest, "the visor was started without a config file: nothing to reload")
	}
	next, err := LoadConfig(v.configPath)
	if err != nil {
		return res, admin.Errorf(admin.CodeBadRequest, "the new config is refused and the running one kept:\n%v", err)
	}
	v.reloadMu.Lock()
	defer v.reloadMu.Unlock()
	v.cfgMu.Lock()
	old := *v.cfg
	v.cfgMu.Unlock()
	applied := func(format string, args ...any) { res.Applied = append(res.Applied, fmt.Sprintf(format, args...)) }

	if next.LogLevel != old.LogLevel {
		var lvl zapcore.Level
		switch {
		case v.level == nil:
			res.NeedRestart = append(res.NeedRestart, "log_level (the --log-level flag sets it)")
		case lvl.UnmarshalText([]byte(next.LogLevel)) == nil:
			v.level.SetLevel(lvl)
			applied("log_level %s → %s", old.LogLevel, next.LogLevel)
		}
	}
	v.reloadApps(old.Apps, next.Apps, applied)

	if !slices.Equal(old.Transport.Persistent, next.Transport.Persistent) {
		v.cfgMu.Lock()
		v.keepUpLocked(next.Transport.Persistent)
		v.cfgMu.Unlock()
		applied("transport.persistent: %d transports kept up", len(next.Transport.Persistent))
	}
	if !maps.Equal(old.STCP.PKTable, next.STCP.PKTable) {
		if stcp := v.stcpNet(); stcp != nil {
			stcp.SetTable(maps.Clone(next.STCP.PKTable))
			applied("stcp.pk_table: %d peers", len(next.STCP.PKTable))
		} else {
			res.NeedRestart = append(res.NeedRestart, "stcp.pk_table (stcp was off at start)")
		}
	}
	if !slices.Equal(old.Hypervisors, next.Hypervisors) {
		v.setHypervisors(next.Hypervisors)
		applied("hypervisors: %d", len(next.Hypervisors))
	}
	if !maps.Equal(old.Transport.Labels, next.Transport.Labels) {
		applied("transport.labels: %d peers named", len(next.Transport.Labels))
	}
	if next.Routing.MinHops != old.Routing.MinHops {
		v.router.SetMinHops(next.Routing.MinHops)
		applied("routing.min_hops %d → %d", old.Routing.MinHops, next.Routing.MinHops)
	}

	// Everything else needs a restart: compare what is left.
	rest := func(c Config) map[string]json.RawMessage {
		c.LogLevel, c.Apps, c.Transport.Persistent, c.STCP.PKTable, c.Hypervisors, c.Routing.MinHops = "", nil, nil, nil, nil, 0
		c.Transport.Labels = nil
		b, _ := json.Marshal(c)
		var m map[string]json.RawMessage
		json.Unmarshal(b, &m)
		return m
	}
	oldRest, nextRest := rest(old), rest(*next)
	for _, k := range slices.Sorted(maps.Keys(nextRest)) {
		if string(oldRest[k]) != string(nextRest[k]) {
			res.NeedRestart = append(res.NeedRestart, k)
		}
	}

	// The visor's view of its config: what was applied is the new file's;
	// what needs a restart stays as it runs.
	v.cfgMu.Lock()
	v.cfg.LogLevel = next.LogLevel
	v.cfg.Apps = next.Apps
	v.cfg.Transport.Persistent = next.Transport.Persistent
	v.cfg.STCP.PKTable = next.STCP.PKTable
	v.cfg.Hypervisors = next.Hypervisors
	v.cfg.Routing.MinHops = next.Routing.MinHops
	v.cfg.Transport.Labels = next.Transport.Labels
	v.cfgMu.Unlock()
	v.log.Info("config reloaded", zap.Strings("applied", res.Applied), zap.Strings("need_restart", res.NeedRestart))
	return res, nil
}

// reloadApps applies the apps' changes: removed ones stop, new ones are
// added (and started if auto_start), running ones whose args or port
// changed restart, and one whose auto_start was turned on starts.
func (v *Visor) reloadApps(old, next []AppConfig, applied func(string, ...any)) {
	byName := func(apps []AppConfig) map[string]AppConfig {
		m := map[string]AppConfig{}
		for _, a := range apps {
			m[a.App] = a
		}
		return m
	}
	o, n := byName(old), byName(next)
	running := map[string]bool{}
	for _, i := range v.apps.List() {
		running[i.Name] = i.State == appserver.StateRunning
	}
	for _, name := range slices.Sorted(maps.Keys(o)) {
		if _, ok := n[name]; !ok {
			if err := v.apps.Remove(name); err != nil {
				v.log.Warn("reload: removing an app", zap.String("app", name), zap.Error(err))
				continue
			}
			applied("app %s removed", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(n)) {
		a := n[name]
		cfg := appserver.AppConfig{Name: a.App, Port: a.Port, AutoStart: a.AutoStart, Args: a.Args}
		prev, had := o[name]
		switch {
		case !had:
			if err := v.apps.Add(cfg); err != nil {
				v.log.Warn("reload: adding an app", zap.String("app", name), zap.Error(err))
				continue
			}
			applied("app %s added", name)
			if a.AutoStart {
				v.startApp(name, applied)
			}
		case prev.Port != a.Port || !slices.Equal(prev.Args, a.Args) || prev.AutoStart != a.AutoStart:
			if err := v.apps.SetConfig(cfg); err != nil {
				continue
			}
			switch {
			case running[name] && (prev.Port != a.Port || !slices.Equal(prev.Args, a.Args)):
				v.apps.Stop(name)
				applied("app %s restarted with its new arguments", name)
				v.startApp(name, applied)
			case !running[name] && a.AutoStart && !prev.AutoStart:
				applied("app %s: auto start on", name)
				v.startApp(name, applied)
			default:
				applied("app %s: settings saved for its next start", name)
			}
		}
	}
}

func (v *Visor) startApp(name string, applied func(string, ...any)) {
	if err := v.apps.Start(name, nil); err != nil {
		applied("app %s did not start: %v", name, err)
	}
}

// stcpNet is the stcp network, or nil.
func (v *Visor) stcpNet() *transport.STCPNet {
	for _, n := range v.networks {
		if s, ok := n.(*transport.STCPNet); ok {
			return s
		}
	}
	return nil
}

func (v *Visor) registerReloadAPI() {
	admin.Handle(v.api, admin.Reload, func(context.Context, admin.Empty) (admin.ReloadResult, error) {
		return v.Reload()
	})
}
