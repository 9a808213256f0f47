package cli

import (
	"context"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/visor"
)

// reloadOnHUP: Windows has no SIGHUP; `skywire cli visor reload` reloads.
func reloadOnHUP(context.Context, *visor.Visor, *zap.Logger) func() { return func() {} }
