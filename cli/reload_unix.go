//go:build !windows

package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/internal/sdnotify"
	"github.com/skyfleet/skywire/visor"
)

// reloadOnHUP reloads the visor's config on each SIGHUP until ctx ends (as
// systemd's ExecReload sends), telling systemd it reloads meanwhile.
func reloadOnHUP(ctx context.Context, v *visor.Visor, log *zap.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-quit:
				return
			case <-hup:
				log.Info("SIGHUP: reloading the config")
				sdnotify.Notify(sdnotify.Reloading)
				if _, err := v.Reload(); err != nil {
					log.Error("config reload refused: the running config is kept", zap.Error(err))
				}
				sdnotify.Notify(sdnotify.Ready)
			}
		}
	}()
	return func() { signal.Stop(hup); close(quit); <-done }
}
