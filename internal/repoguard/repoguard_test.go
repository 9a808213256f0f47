package repoguard

import (
	"bytes"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/skyfleet/skywire"

// rules says which of our packages each package may import (non-test
// files). A rule for "dmsg" also covers dmsg/… unless a longer rule exists.
// "*" allows everything. Leaf helpers (below) may be imported by anyone.
// Keep in step with docs/architecture.md and ../shared/STYLE.md.
var rules = map[string][]string{
	".":                   {"cli"},
	"cli":                 {"*"},
	"cipher":              {},
	"noise":               {"cipher"},
	"admin":               {"cipher"},
	"dmsg":                {"dmsg", "noise", "cipher", "svc/dmsgdisc", "svc/httpauth"},
	"svc":                 {"svc", "cipher", "noise"},
	"svc/store":           {},
	"svc/suite":           {"svc", "dmsg", "cipher"},
	"transport":           {"transport", "dmsg", "noise", "cipher", "svc/tpdisc", "svc/ar", "svc/httpauth"},
	"router":              {"router", "transport", "noise", "cipher", "svc/rf"},
	"apps/sdk":            {"cipher"},
	"apps":                {"apps", "cipher"},
	"visor":               {"visor", "admin", "cipher", "noise", "dmsg", "dmsgpty", "transport", "router", "svc", "internal/hvlink"},
	"hypervisor":          {"hypervisor", "admin", "dmsg", "dmsgpty", "cipher", "internal/hvlink"},
	"dmsgpty":             {"cipher"},
	"internal/hvlink":     {"dmsg", "noise", "cipher"},
	"internal/configfile": {},
	"internal/buildinfo":  {},
	"internal/race":       {},
	"internal/replay":     {},
	"internal/appproto":   {},
	"internal/loopback":   {},
	"internal/backlog":    {},
	"internal/ports":      {},
	"internal/acceptor":   {},
	"internal/logring":    {},
	"internal/changes":    {},
	"internal/hostcfg":    {},
	"internal/packets":    {},
	"internal/sdnotify":   {},
	"internal/testnet":    {"visor", "admin", "cipher", "noise", "dmsg", "transport", "router", "svc"},
	"internal/redistest":  {},
	"internal/svcbench":   {"svc"},
	"internal/release":    {},
	"internal/testtool":   {},
	"internal/e2e":        {},
	"internal/repoguard":  {},
}

// leaves import nothing of ours and may be imported by every package.
var leaves = []string{"svc/store", "internal/configfile", "internal/buildinfo", "internal/race", "internal/replay", "internal/appproto", "internal/loopback", "internal/backlog", "internal/ports", "internal/acceptor", "internal/logring", "internal/changes", "internal/hostcfg", "internal/packets", "internal/sdnotify"}

// testOnly may be imported only by test files (and by the demo in cli).
var testOnly = []string{"internal/testnet", "internal/redistest", "internal/svcbench", "internal/testtool"}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// goFiles returns every .go file of the repository, relative to root.
func goFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() && path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "node_modules" || name == "dist") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(name, ".go") {
			rel, _ := filepath.Rel(root, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestGofmt(t *testing.T) {
	root := repoRoot(t)
	for _, f := range goFiles(t, root) {
		src, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := format.Source(src)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s is not gofmt-formatted: run `gofmt -w %s`", f, f)
		}
	}
}

func TestVet(t *testing.T) {
	if testing.Short() {
		t.Skip("go vet runs in `make lint`; -short skips it here")
	}
	cmd := exec.Command("go", "vet", "./...")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go vet ./...: %v\n%s", err, out)
	}
}

// ruleFor finds the longest rule covering pkg.
func ruleFor(pkg string) (string, []string, bool) {
	best := ""
	found := false
	for k := range rules {
		if (pkg == k || strings.HasPrefix(pkg, k+"/") || (k == "." && pkg == ".")) && len(k) >= len(best) {
			best, found = k, true
		}
	}
	return best, rules[best], found
}

func allowed(may []string, imp string) bool {
	for _, m := range may {
		if m == "*" || imp == m || strings.HasPrefix(imp, m+"/") {
			return true
		}
	}
	return slices.Contains(leaves, imp)
}

func TestImportRules(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	var problems []string
	for _, f := range goFiles(t, root) {
		file, err := parser.ParseFile(fset, filepath.Join(root, f), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		pkg := filepath.ToSlash(filepath.Dir(f))
		isTest := strings.HasSuffix(f, "_test.go")
		key, may, ok := ruleFor(pkg)
		if !ok {
			problems = append(problems, "package "+pkg+" has no import rule: add one to internal/repoguard and docs/architecture.md")
			continue
		}
		for _, spec := range file.Imports {
			path, _ := strconv.Unquote(spec.Path.Value)
			if path != module && !strings.HasPrefix(path, module+"/") {
				continue
			}
			imp := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
			if imp == "" {
				imp = "."
			}
			if slices.Contains(testOnly, imp) {
				if !isTest && pkg != "cli" && !slices.Contains(testOnly, pkg) { // test support may build on test support
					problems = append(problems, f+" imports "+imp+", which only tests and the demo may import")
				}
				continue
			}
			if isTest && (imp == "cipher" || imp == "apps/sdk" || slices.Contains(leaves, imp) || strings.HasPrefix(imp, "svc/")) {
				continue // any test may make keys and configs, run real services, and act as an app
			}
			if !allowed(may, imp) {
				problems = append(problems, f+" (rule "+key+") may not import "+imp)
			}
		}
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestRulesAreChecked proves the check bites: a forbidden edge is reported.
func TestRulesAreChecked(t *testing.T) {
	_, may, _ := ruleFor("cipher")
	if allowed(may, "visor") {
		t.Fatal("cipher may import visor?")
	}
	_, may, _ = ruleFor("hypervisor")
	if allowed(may, "visor") || !allowed(may, "admin") || !allowed(may, "internal/configfile") {
		t.Fatal("hypervisor's rule is wrong")
	}
	if k, _, _ := ruleFor("apps/sdk"); k != "apps/sdk" {
		t.Fatalf("apps/sdk matched rule %q", k)
	}
	if k, _, _ := ruleFor("apps/skychat"); k != "apps" {
		t.Fatalf("apps/skychat matched rule %q", k)
	}
}
