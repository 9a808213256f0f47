package visor

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/skyfleet/skywire/admin"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/visor/appserver"
)

// VPNClientApp is the app `cli vpn` controls.
const VPNClientApp = "vpn-client"

func (v *Visor) registerVPNAPI() {
	admin.Handle(v.api, admin.StartVPN, func(_ context.Context, req admin.VPNRequest) (admin.VPNStatus, error) {
		if err := req.Server.Check(); err != nil {
			return admin.VPNStatus{}, admin.Errorf(admin.CodeBadRequest, "%v", err)
		}
		err := v.updateApp(VPNClientApp, func(a *AppConfig) {
			a.Args = withFlag(a.Args, "--srv", req.Server.Hex())
			a.Args = withFlag(a.Args, "--passcode", req.Passcode)
			a.Args = withBool(a.Args, "--killswitch", req.Killswitch)
			a.Args = withFlag(a.Args, "--dns", strings.Join(req.DNS, ","))
		})
		if err != nil {
			return admin.VPNStatus{}, err
		}
		v.apps.Stop(VPNClientApp) // not running is fine
		if err := v.apps.Start(VPNClientApp, nil); err != nil {
			return admin.VPNStatus{}, appError(err)
		}
		return v.vpnStatus()
	})
	admin.Handle(v.api, admin.StopVPN, func(ctx context.Context, _ admin.Empty) (admin.VPNStatus, error) {
		if err := v.apps.Stop(VPNClientApp); err != nil && !errors.Is(err, appserver.ErrNotRunning) {
			return admin.VPNStatus{}, appError(err)
		}
		// A killed client left its record: have it restored.
		dir := v.appDir(VPNClientApp)
		restored := false
		if _, err := os.Stat(filepath.Join(dir, appproto.VPNClientState)); err == nil {
			cmd := exec.CommandContext(ctx, v.exe, VPNClientApp, "--restore", "--state", appproto.VPNClientState)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				return admin.VPNStatus{}, admin.Errorf(admin.CodeInternal, "restoring what the killed vpn-client left: %v: %s", err, strings.TrimSpace(string(out)))
			}
			restored = true
		}
		os.Remove(filepath.Join(dir, appproto.VPNClientStatus))
		st, err := v.vpnStatus()
		st.Restored = restored
		return st, err
	})
	admin.Handle(v.api, admin.GetVPN, func(context.Context, admin.Empty) (admin.VPNStatus, error) {
		return v.vpnStatus()
	})
}

// appDir is an app's working directory.
func (v *Visor) appDir(name string) string { return filepath.Join(v.localPath, "apps", name) }

// vpnStatus is vpn-client's app and, while it runs, its last report.
func (v *Visor) vpnStatus() (admin.VPNStatus, error) {
	i, err := v.apps.Info(VPNClientApp)
	if err != nil {
		return admin.VPNStatus{}, appError(err)
	}
	st := admin.VPNStatus{App: appInfo(i)}
	st.Server = admin.ArgValue(i.Args, "--srv")
	st.Killswitch = hasFlag(i.Args, "--killswitch")
	if i.State == appserver.StateRunning {
		if b, err := os.ReadFile(filepath.Join(v.appDir(VPNClientApp), appproto.VPNClientStatus)); err == nil {
			json.Unmarshal(b, &st.VPNReport)
		}
	}
	if i.State != appserver.StateRunning {
		st.Connected = false
		if i.Error != "" {
			st.LastError = i.Error
		}
	}
	return st, nil
}

func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || a == flag+"=true" {
			return true
		}
	}
	return false
}

// withBool sets or removes a boolean flag.
func withBool(args []string, flag string, on bool) []string {
	out := make([]string, 0, len(args)+1)
	for _, a := range args {
		if a != flag && !strings.HasPrefix(a, flag+"=") {
			out = append(out, a)
		}
	}
	if on {
		out = append(out, flag)
	}
	return out
}
