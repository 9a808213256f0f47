package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/skyfleet/skywire/internal/testtool"
)

// script writes `skywire completion SHELL` to a file.
func script(t *testing.T, sh string) string {
	t.Helper()
	code, out, errs := runMain(t, "", "skywire", "completion", sh)
	if code != ExitOK {
		t.Fatalf("completion %s: exit %d: %s", sh, code, errs)
	}
	path := filepath.Join(t.TempDir(), "skywire."+sh)
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The completion scripts complete what the command tree holds, in the
// real shells: roles, commands at any depth (flags typed before are
// skipped), and a command's flags.
func TestCompletion(t *testing.T) {
	bashScript := script(t, "bash")
	complete := func(words ...string) []string {
		t.Helper()
		line := "COMP_WORDS=(" + strings.Join(words, " ") + "); COMP_CWORD=" + strconv.Itoa(len(words)-1)
		out, err := exec.Command(testtool.Need(t, "bash"), "-c", "source "+bashScript+"; "+line+`; _skywire_complete; printf '%s\n' "${COMPREPLY[@]}"`).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v: %s", err, out)
		}
		return strings.Fields(string(out))
	}
	for _, tt := range []struct {
		words []string
		want  string
	}{
		{[]string{"skywire", "cl"}, "cli"},
		{[]string{"skywire", "cli", "visor", "ha"}, "halt"},
		{[]string{"skywire", "cli", "--rpc", "x", "visor", "tp", "ty"}, "type"},
		{[]string{"skywire", "cli", "add-tp", "--ty"}, "--type"},
		{[]string{"skywire", "svc", "all", "--sto"}, "--store"},
	} {
		if got := complete(tt.words...); len(got) != 1 || got[0] != tt.want {
			t.Errorf("bash completes %v with %v, want [%s]", tt.words, got, tt.want)
		}
	}

	fishScript := script(t, "fish")
	out, err := exec.Command(testtool.Need(t, "fish"), "-c", "source "+fishScript+"; complete -C 'skywire cli visor ha'").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "halt" {
		t.Errorf("fish completes `skywire cli visor ha` with %q (%v)", out, err)
	}

	zshScript := script(t, "zsh")
	if out, err := exec.Command(testtool.Need(t, "zsh"), "-n", zshScript).CombinedOutput(); err != nil {
		t.Errorf("the zsh script does not parse: %v: %s", err, out)
	}
	if code, out, _ := runMain(t, "", "skywire", "completion", "powershell"); code != ExitOK || !strings.Contains(out, "'cli visor' = @(") {
		t.Errorf("completion powershell: exit %d", code)
	}
	if code, _, errs := runMain(t, "", "skywire", "completion", "tcsh"); code != ExitUsage || !strings.Contains(errs, "bash, zsh, fish or powershell") {
		t.Errorf("completion tcsh: exit %d %q", code, errs)
	}
}

// `skywire man` is a roff page naming every role and a deep command.
func TestManPage(t *testing.T) {
	code, out, errs := runMain(t, "", "skywire", "man")
	if code != ExitOK {
		t.Fatalf("man: exit %d: %s", code, errs)
	}
	for _, want := range []string{".TH skywire 1", "config", "migrate", "halt", "svc", "--store"} {
		if !strings.Contains(out, want) {
			t.Errorf("the man page lacks %q", want)
		}
	}
	if man, err := exec.LookPath("man"); err == nil {
		path := filepath.Join(t.TempDir(), "skywire.1")
		os.WriteFile(path, []byte(out), 0o600)
		if b, err := exec.Command(man, "-l", path).CombinedOutput(); err != nil || !strings.Contains(string(b), "skywire") {
			t.Errorf("man -l: %v: %.300s", err, b)
		}
	}
}
