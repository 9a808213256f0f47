// Package testtool finds the programs tests run (redis-server, nginx,
// python3, chromium, shells): a test on a machine without one skips,
// except under CI (which installs them all, `.ci/run`), where it fails.
// Only tests import it.
package testtool

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Need returns the path of the first of names found on PATH, or skips the
// test (fails it under CI) naming what to install.
func Need(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("no %s: .ci/run installs it", strings.Join(names, " or "))
	}
	t.Skipf("no %s here (apt-get install %s)", strings.Join(names, " or "), names[0])
	return ""
}
