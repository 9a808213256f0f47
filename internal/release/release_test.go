// Package release checks what `make release` made: `make test` runs it on a
// fresh release (SKYWIRE_RELEASE_DIR names it); alone it has nothing to
// check and skips.
package release

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// targets are the release's platforms, as the archives name them.
var targets = []string{"linux-amd64", "linux-arm64", "linux-armv7", "linux-armv6", "linux-riscv64", "windows-amd64", "darwin-amd64", "darwin-arm64"}

// debs are the Debian architectures with a package.
var debs = []string{"amd64", "arm64", "armhf", "riscv64"}

// roleLinks are the program names the .deb links to skywire.
var roleLinks = []string{"skywire-visor", "skywire-cli", "hypervisor", "skywire-hypervisor", "skychat", "skysocks", "skysocks-client", "vpn-server", "vpn-client"}

func dir(t *testing.T) string {
	d := os.Getenv("SKYWIRE_RELEASE_DIR")
	if d == "" {
		t.Skip("SKYWIRE_RELEASE_DIR is not set: `make test` sets it after `make release`")
	}
	return d
}

// entries lists an archive's files: name → mode.
func entries(t *testing.T, path string) map[string]os.FileMode {
	t.Helper()
	out := map[string]os.FileMode{}
	if strings.HasSuffix(path, ".zip") {
		z, err := zip.OpenReader(path)
		if err != nil {
			t.Fatal(err)
		}
		defer z.Close()
		for _, f := range z.File {
			out[f.Name] = f.Mode()
		}
		return out
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out[h.Name] = h.FileInfo().Mode()
	}
}

// Every target has its archive with the binary, the README, and (Linux)
// the unit, the man page and the completions; Windows a zip with the .exe
// and the PowerShell completion.
func TestArchives(t *testing.T) {
	d := dir(t)
	for _, target := range targets {
		matches, _ := filepath.Glob(filepath.Join(d, "skywire-*-"+target+".*"))
		if len(matches) != 1 {
			t.Errorf("%s: %d archives (%v), want 1", target, len(matches), matches)
			continue
		}
		path := matches[0]
		pkg := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".tar.gz"), ".zip")
		files := entries(t, path)
		want := []string{"skywire", "README.md", "skywire.1.gz", "skywire.bash", "_skywire", "skywire.fish"}
		switch {
		case strings.HasPrefix(target, "windows"):
			want = []string{"skywire.exe", "README.md", "skywire.ps1"}
			if !strings.HasSuffix(path, ".zip") {
				t.Errorf("%s: %s, want a zip", target, path)
			}
		case strings.HasPrefix(target, "linux"):
			want = append(want, "skywire.service")
		}
		for _, w := range want {
			mode, ok := files[pkg+"/"+w]
			if !ok {
				t.Errorf("%s lacks %s (has %v)", path, w, files)
			}
			if w == "skywire" && mode&0o111 == 0 {
				t.Errorf("%s: skywire is not executable (%v)", path, mode)
			}
		}
	}
}

// The binary for this machine runs and says its version.
func TestBinaryRuns(t *testing.T) {
	d := dir(t)
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("runs the linux-amd64 binary")
	}
	matches, _ := filepath.Glob(filepath.Join(d, "skywire-*-linux-amd64.tar.gz"))
	if len(matches) != 1 {
		t.Fatalf("no linux-amd64 archive: %v", matches)
	}
	tmp := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", matches[0], "-C", tmp).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	bins, _ := filepath.Glob(filepath.Join(tmp, "*", "skywire"))
	if len(bins) != 1 {
		t.Fatalf("no binary in the archive: %v", bins)
	}
	out, err := exec.Command(bins[0], "version").CombinedOutput()
	version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(matches[0]), "skywire-"), "-linux-amd64.tar.gz")
	if err != nil || !strings.HasPrefix(string(out), "skywire "+version+"\n") {
		t.Fatalf("skywire version: %v %q, want %s", err, out, version)
	}
}

// Each .deb holds the binary, every role name linked to it, the unit, the
// man page, the completions and the README, with its architecture, and the
// scripts that make the service user and config.
func TestDebs(t *testing.T) {
	d := dir(t)
	dpkg, err := exec.LookPath("dpkg-deb")
	if err != nil {
		t.Fatal("no dpkg-deb to read the packages")
	}
	for _, arch := range debs {
		matches, _ := filepath.Glob(filepath.Join(d, "skywire_*_"+arch+".deb"))
		if len(matches) != 1 {
			t.Errorf("%s: %d packages (%v), want 1", arch, len(matches), matches)
			continue
		}
		out, err := exec.Command(dpkg, "-c", matches[0]).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb -c %s: %v %s", matches[0], err, out)
		}
		list := string(out)
		want := []string{"./usr/bin/skywire\n", "./lib/systemd/system/skywire.service", "./usr/share/man/man1/skywire.1.gz",
			"./usr/share/bash-completion/completions/skywire", "./usr/share/zsh/vendor-completions/_skywire",
			"./usr/share/fish/vendor_completions.d/skywire.fish", "./usr/share/doc/skywire/README.md"}
		for _, l := range roleLinks {
			want = append(want, "./usr/bin/"+l+" -> skywire")
		}
		for _, w := range want {
			if !strings.Contains(list, w) {
				t.Errorf("%s lacks %q:\n%s", matches[0], w, list)
			}
		}
		if !regexp.MustCompile(`-rwxr-xr-x \S+ +\d+ [^\n]* \./usr/bin/skywire\n`).MatchString(list) {
			t.Errorf("%s: /usr/bin/skywire is not 0755:\n%s", matches[0], list)
		}
		fields, err := exec.Command(dpkg, "-f", matches[0], "Package", "Architecture").CombinedOutput()
		if err != nil || string(fields) != "Package: skywire\nArchitecture: "+arch+"\n" {
			t.Errorf("%s control: %v %q", matches[0], err, fields)
		}
		ctl := t.TempDir()
		if out, err := exec.Command(dpkg, "-e", matches[0], ctl).CombinedOutput(); err != nil {
			t.Fatalf("dpkg-deb -e: %v %s", err, out)
		}
		for _, s := range []string{"postinst", "prerm"} {
			if _, err := os.Stat(filepath.Join(ctl, s)); err != nil {
				t.Errorf("%s has no %s", matches[0], s)
			}
		}
	}
}

// SHA256SUMS names every archive and package, each with its right sum.
func TestSums(t *testing.T) {
	d := dir(t)
	f, err := os.Open(filepath.Join(d, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var listed []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS line %q", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join(d, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s: the sum does not match", name)
		}
		listed = append(listed, name)
	}
	all, _ := filepath.Glob(filepath.Join(d, "skywire*"))
	for _, p := range all {
		if !slices.Contains(listed, filepath.Base(p)) {
			t.Errorf("SHA256SUMS does not list %s", filepath.Base(p))
		}
	}
	if len(listed) != len(targets)+len(debs) {
		t.Errorf("SHA256SUMS lists %d files, want %d", len(listed), len(targets)+len(debs))
	}
}

// `make install DESTDIR=… PREFIX=/usr` (SKYWIRE_INSTALL_DIR names DESTDIR)
// puts the binary, every role name as a link to it, the man page, the
// completions and the unit (ExecStart pointing at the binary) in place.
func TestInstall(t *testing.T) {
	root := os.Getenv("SKYWIRE_INSTALL_DIR")
	if root == "" {
		t.Skip("SKYWIRE_INSTALL_DIR is not set: `make test` sets it after `make install DESTDIR=…`")
	}
	bin := filepath.Join(root, "usr", "bin")
	for _, l := range roleLinks {
		target, err := os.Readlink(filepath.Join(bin, l))
		if err != nil || target != "skywire" {
			t.Errorf("%s: %q %v, want a link to skywire", l, target, err)
		}
	}
	for _, f := range []string{"usr/bin/skywire", "usr/share/man/man1/skywire.1.gz", "usr/share/bash-completion/completions/skywire",
		"usr/share/zsh/site-functions/_skywire", "usr/share/fish/vendor_completions.d/skywire.fish", "etc/systemd/system/skywire.service"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("make install did not make %s: %v", f, err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/skywire.service"))
	for _, w := range []string{"ExecStart=/usr/bin/skywire visor run", "Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=skywire", "WatchdogSec="} {
		if !strings.Contains(string(unit), w) {
			t.Errorf("the unit lacks %q", w)
		}
	}
	// The links run the roles.
	if out, err := exec.Command(filepath.Join(bin, "skywire-cli"), "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "control a running visor") {
		t.Errorf("skywire-cli --help: %v %.200s", err, out)
	}
}
