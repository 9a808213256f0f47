package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	ucli "github.com/urfave/cli/v2"
	"go.uber.org/goleak"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/hypervisor"
	"github.com/skyfleet/skywire/internal/appproto"
	"github.com/skyfleet/skywire/visor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// runMain runs the executable in-process and returns exit code and output.
func runMain(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpListsEveryRole(t *testing.T) {
	code, out, _ := runMain(t, "", "skywire", "--help")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, r := range roles() {
		if !strings.Contains(out, "  "+r.name+" ") {
			t.Errorf("--help does not list role %q", r.name)
		}
		for _, p := range r.progs {
			if !strings.Contains(out, p) {
				t.Errorf("--help does not list program name %q", p)
			}
		}
	}
}

func TestUnknownRole(t *testing.T) {
	code, _, errs := runMain(t, "", "skywire", "visr")
	if code != ExitUsage {
		t.Fatalf("exit %d, want %d", code, ExitUsage)
	}
	for _, r := range roles() {
		if !strings.Contains(errs, r.name) {
			t.Errorf("error does not list role %q:\n%s", r.name, errs)
		}
	}
	if code, _, _ := runMain(t, "", "skywire"); code != ExitUsage {
		t.Fatalf("no role: exit %d, want %d", code, ExitUsage)
	}
}

func TestDispatchByProgramName(t *testing.T) {
	// Each program name reaches its role: its --help names the role.
	for _, r := range roles() {
		for _, p := range r.progs {
			for _, arg0 := range []string{p, "/usr/local/bin/" + p, p + ".exe", `C:\skywire\` + p + ".EXE"} {
				if strings.Contains(arg0, `\`) && filepath.Separator != '\\' {
					continue // a Windows path only splits on Windows
				}
				code, out, errs := runMain(t, "", arg0, "--help")
				if code != ExitOK {
					t.Fatalf("%s --help: exit %d: %s", arg0, code, errs)
				}
				if !strings.Contains(out, r.summary) {
					t.Fatalf("%s --help reached the wrong role:\n%s", arg0, out)
				}
			}
		}
	}
	if got := programName("skywire-visor.exe"); got != "skywire-visor" {
		t.Fatal(got)
	}
}

func TestPendingRolesSaySo(t *testing.T) {
	for _, r := range roles() {
		if r.build != nil {
			continue
		}
		code, _, errs := runMain(t, "", "skywire", r.name, "--addr", "x")
		if code != ExitFail || !strings.Contains(errs, "not in this build") {
			t.Errorf("%s: exit %d, stderr %q", r.name, code, errs)
		}
	}
}

// With no config, the hypervisor says which gen-config to run, however it
// is started.
func TestHypervisorWithoutConfig(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, args := range [][]string{{"skywire", "hypervisor", "run"}, {"skywire", "hypervisor"}, {"hypervisor"}, {"skywire", "hypervisor", "passwd"}} {
		code, _, errs := runMain(t, "", args...)
		if code != ExitFail || !strings.Contains(errs, "skywire hypervisor gen-config -o hypervisor-config.json") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errs)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runMain(t, "", "skywire", "version", "--json")
	if code != ExitOK {
		t.Fatal(code)
	}
	var v struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version == "" || v.GoVersion == "" {
		t.Fatalf("version --json: %v %q", err, out)
	}
	if code, out, _ := runMain(t, "", "skywire", "--version"); code != ExitOK || !strings.HasPrefix(out, "skywire ") {
		t.Fatalf("--version: %d %q", code, out)
	}
}

func TestPermute(t *testing.T) {
	app := &ucli.App{
		Action: func(*ucli.Context) error { return nil }, // runs FILE, as `skywire visor FILE`
		Flags:  []ucli.Flag{&ucli.StringFlag{Name: "config", Aliases: []string{"c"}}, &ucli.BoolFlag{Name: "v"}},
		Commands: []*ucli.Command{{
			Name:  "visor",
			Flags: []ucli.Flag{&ucli.StringFlag{Name: "rpc"}},
			Subcommands: []*ucli.Command{{
				Name:  "add-tp",
				Flags: []ucli.Flag{&ucli.StringFlag{Name: "type", Aliases: []string{"t"}}, &ucli.BoolFlag{Name: "json"}},
			}},
		}},
	}
	tests := []struct{ in, want string }{
		{"FILE -c x", "-c x FILE"},
		{"FILE --config=x -v", "--config=x -v FILE"},
		{"visor add-tp PK --type stcp --json", "visor add-tp --type stcp --json PK"},
		{"visor add-tp PK -t dmsg", "visor add-tp -t dmsg PK"},
		{"visor --rpc R add-tp PK", "visor --rpc R add-tp PK"},
		{"visor add-tp --json PK -- --not-a-flag", "visor add-tp --json PK -- --not-a-flag"},
		{"visor add-tp PK visor", "visor add-tp PK visor"},
		{"-v visor add-tp", "-v visor add-tp"},
		// A flag typed above the command that declares it goes down to it.
		{"--rpc R visor add-tp PK", "visor --rpc R add-tp PK"},
		{"visor --json add-tp PK", "visor add-tp --json PK"},
		{"--type stcp visor add-tp PK", "visor add-tp --type stcp PK"},
		{"-c x visor --rpc=R add-tp", "-c x visor --rpc=R add-tp"},
		{"--nonsense visor add-tp PK", "visor add-tp --nonsense PK"},
		{"visor frob --rpc R", "visor frob --rpc R"},
		{"", ""},
	}
	for _, tt := range tests {
		got := strings.Join(permute(app, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("permute(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestGenConfig(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "v.json")

	code, stdout, errs := runMain(t, "", "skywire", "visor", "gen-config", "-o", out, "-t", "--cli-addr", "v.sock", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res genResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	cfg, err := visor.LoadConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PK != res.PK || cfg.Dmsg.Discovery != "http://127.0.0.1:9090" || cfg.CLIAddr != "v.sock" {
		t.Fatalf("written config: %+v", cfg)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}

	// Without -f an existing file is never touched.
	before, _ := os.ReadFile(out)
	code, _, errs = runMain(t, "", "skywire", "visor", "gen-config", "-o", out)
	if code != ExitFail || !strings.Contains(errs, "already exists") {
		t.Fatalf("second gen-config: exit %d: %s", code, errs)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
		t.Fatal("existing config was modified without -f")
	}

	// -r keeps the keys, and keeps a backup.
	code, _, errs = runMain(t, "", "skywire", "cli", "visor", "gen-config", "-o", out, "-r")
	if code != ExitOK {
		t.Fatalf("-r: exit %d: %s", code, errs)
	}
	regen, err := visor.LoadConfig(out)
	if err != nil || regen.PK != cfg.PK || regen.Dmsg.Discovery != "" {
		t.Fatalf("-r: %v pk %s services %q", err, regen.PK, regen.Dmsg.Discovery)
	}
	if bak, _ := os.ReadFile(out + ".bak"); !bytes.Equal(bak, before) {
		t.Fatal("-r did not keep the previous file as .bak")
	}

	// -f makes a new key.
	if code, _, errs = runMain(t, "", "skywire", "visor", "gen-config", "-o", out, "-f"); code != ExitOK {
		t.Fatalf("-f: %s", errs)
	}
	forced, _ := visor.LoadConfig(out)
	if forced.PK == cfg.PK {
		t.Fatal("-f kept the old key")
	}
}

func TestGenConfigFlags(t *testing.T) {
	dir := t.TempDir()
	pk, sk := cipher.GenerateKeyPair()
	hv, _ := cipher.GenerateKeyPair()
	hv2, _ := cipher.GenerateKeyPair()

	// -n prints and writes nothing; --sk - reads the key from stdin.
	code, stdout, errs := runMain(t, sk.Hex()+"\n", "skywire", "visor", "gen-config", "-n", "--sk", "-",
		"--svc", "10.0.0.5", "--hypervisor-pks", hv.Hex()+","+hv2.Hex(), "-o", filepath.Join(dir, "x.json"))
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatal("-n wrote a file")
	}
	var cfg visor.Config
	if err := json.Unmarshal([]byte(stdout), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.PK != pk || !cfg.SK.Equal(sk) {
		t.Fatal("--sk was not used")
	}
	if cfg.Transport.Discovery != "http://10.0.0.5:9091" {
		t.Fatalf("--svc: %q", cfg.Transport.Discovery)
	}
	got := []cipher.PubKey{cfg.Hypervisors[0].PublicKey, cfg.Hypervisors[1].PublicKey}
	if !reflect.DeepEqual(got, []cipher.PubKey{hv, hv2}) {
		t.Fatalf("--hypervisor-pks: %v", got)
	}

	usage := [][]string{
		{"--sk", "abc"},
		{"-t", "--svc", "h"},
		{"--hypervisor-pks", "nope"},
		{"--svc", "http://x:1"},
		{"--cli-addr", "nohostport"},
		{"extra-arg"},
	}
	for _, extra := range usage {
		args := append([]string{"skywire", "visor", "gen-config", "-n"}, extra...)
		if code, _, errs := runMain(t, "", args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", extra, code, ExitUsage, errs)
		}
	}
	// A secret key given badly is never echoed.
	_, _, errs = runMain(t, "", "skywire", "visor", "gen-config", "-n", "--sk", sk.Hex()[:60])
	if strings.Contains(errs, sk.Hex()[:60]) {
		t.Fatal("error echoes the secret key")
	}
}

func TestHypervisorGenConfig(t *testing.T) {
	out := filepath.Join(t.TempDir(), "hv.json")
	code, _, errs := runMain(t, "", "skywire", "hypervisor", "gen-config", "-o", out, "-t", "--http-addr", "127.0.0.1:8080")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	cfg, err := hypervisor.LoadConfig(out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPAddr != "127.0.0.1:8080" || cfg.Dmsg.Discovery != "http://127.0.0.1:9090" {
		t.Fatalf("%+v", cfg)
	}
	if code, _, _ := runMain(t, "", "hypervisor", "gen-config", "-o", out); code != ExitFail {
		t.Fatal("hypervisor gen-config overwrote without -f")
	}
}

func TestVisorRunErrors(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := runMain(t, "", "skywire", "visor", "run", "-c", filepath.Join(dir, "missing.json"))
	if code != ExitFail || !strings.Contains(errs, "gen-config") {
		t.Fatalf("missing config: exit %d: %s", code, errs)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"version":"v1","sk":"","pk":"","dmsgg":{}}`), 0o600)
	code, _, errs = runMain(t, "", "skywire-visor", bad)
	if code != ExitFail || !strings.Contains(errs, `dmsgg: unknown field (did you mean "dmsg"?)`) {
		t.Fatalf("misspelled config: exit %d: %s", code, errs)
	}
	code, _, errs = runMain(t, "", "skywire", "visor", "a.json", "b.json")
	if code != ExitUsage {
		t.Fatalf("two files: exit %d: %s", code, errs)
	}
	good := filepath.Join(dir, "good.json")
	if code, _, errs := runMain(t, "", "skywire", "visor", "gen-config", "-o", good); code != ExitOK {
		t.Fatal(errs)
	}
	code, _, errs = runMain(t, "", "skywire", "visor", good, "--log-format", "xml")
	if code != ExitUsage || !strings.Contains(errs, `log format "xml"`) {
		t.Fatalf("bad log format: exit %d: %s", code, errs)
	}
	code, _, errs = runMain(t, "", "skywire", "visor", good, "--log-level", "loud")
	if code != ExitUsage || !strings.Contains(errs, `log level "loud"`) {
		t.Fatalf("bad log level: exit %d: %s", code, errs)
	}
}

func TestCLIUnreachable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, _, errs := runMain(t, "", "skywire", "cli", "visor", "info", "--rpc", sock)
	if code != ExitFail || !strings.Contains(errs, "cannot reach the visor at "+sock) || !strings.Contains(errs, "is the visor running?") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, _, _ = runMain(t, "", "skywire", "cli", "visor", "info", "--rpc", "nohostport")
	if code != ExitUsage {
		t.Fatalf("bad --rpc: exit %d", code)
	}
}

// Every built-in app is a role of the executable, by its table.
func TestBuiltinAppsAreRoles(t *testing.T) {
	for _, b := range appproto.Builtins {
		found := false
		for _, r := range roles() {
			found = found || r.name == b.Name && slices.Contains(r.progs, b.Name)
		}
		if !found {
			t.Errorf("built-in app %s is not a role", b.Name)
		}
	}
}

// gen-config -i makes the visor its own hypervisor: the "hypervisor" block
// with the UI on 127.0.0.1:8000; without it there is none.
func TestGenConfigHypervisor(t *testing.T) {
	code, stdout, errs := runMain(t, "", "skywire", "visor", "gen-config", "-n", "-i")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var cfg visor.Config
	if err := json.Unmarshal([]byte(stdout), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Hypervisor == nil || cfg.Hypervisor.HTTPAddr != "127.0.0.1:8000" || cfg.Hypervisor.DBPath == "" {
		t.Fatalf("-i: %+v", cfg.Hypervisor)
	}
	if _, stdout, _ = runMain(t, "", "skywire", "visor", "gen-config", "-n"); strings.Contains(stdout, `"hypervisor"`) {
		t.Fatal("a hypervisor block without -i")
	}
}

// The Makefile's ROLE_LINKS (what `make install` and the .deb link) are the
// program names the binary answers to, no more and no fewer.
func TestRoleLinksMatchTheMakefile(t *testing.T) {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "ROLE_LINKS := "); ok {
			links = strings.Fields(v)
		}
	}
	var progs []string
	for _, r := range roles() {
		progs = append(progs, r.progs...)
	}
	slices.Sort(links)
	slices.Sort(progs)
	if !slices.Equal(links, progs) {
		t.Fatalf("Makefile ROLE_LINKS %v, the binary's program names %v", links, progs)
	}
	nfpm, err := os.ReadFile("../packaging/nfpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range progs {
		if !strings.Contains(string(nfpm), "dst: /usr/bin/"+p+"\n") {
			t.Errorf("packaging/nfpm.yaml does not link %s", p)
		}
	}
}
