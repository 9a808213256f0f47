package configfile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

type sample struct {
	Version string `json:"version"`
	Inner   struct {
		Discovery string `json:"discovery"`
		Count     int    `json:"sessions_count"`
	} `json:"dmsg"`
	Table map[cipher.PubKey]string `json:"pk_table"`
	Apps  []struct {
		App  string `json:"app"`
		Port uint16 `json:"port"`
	} `json:"apps"`
	PK     cipher.PubKey `json:"pk"`
	Hidden string        `json:"-"`
	Opt    *struct {
		On bool `json:"on"`
	} `json:"opt,omitempty"`
}

const pk1 = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"

func TestDecodeValid(t *testing.T) {
	in := `{"version":"v1","dmsg":{"discovery":"http://x","sessions_count":2},
	"pk_table":{"` + pk1 + `":"127.0.0.1:7777"},"apps":[{"app":"skychat","port":1}],"pk":"` + pk1 + `","opt":null}`
	var s sample
	if err := Decode([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	pk, _ := cipher.ParsePubKey(pk1)
	if s.Inner.Count != 2 || s.Table[pk] != "127.0.0.1:7777" || s.Apps[0].Port != 1 || s.PK != pk {
		t.Fatalf("decoded wrong: %+v", s)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
		is   error
	}{
		{"unknown top-level", `{"verison":"v1"}`, []string{`verison: unknown field (did you mean "version"?)`}, ErrUnknownField},
		{"unknown nested", `{"dmsg":{"discvery":"http://x"}}`, []string{`dmsg.discvery: unknown field (did you mean "discovery"?)`}, ErrUnknownField},
		{"unknown far off", `{"zzzzzzzzzz":1}`, []string{"zzzzzzzzzz: unknown field (known fields here: apps, dmsg, opt, pk, pk_table, version)"}, ErrUnknownField},
		{"unknown in list", `{"apps":[{"app":"a"},{"app":"b","prot":3}]}`, []string{`apps[1].prot: unknown field (did you mean "port"?)`}, ErrUnknownField},
		{"ignored field is unknown", `{"Hidden":"x"}`, []string{"Hidden: unknown field"}, ErrUnknownField},
		{"wrong type", `{"dmsg":{"sessions_count":"two"}}`, []string{`dmsg.sessions_count: want a whole number, got "two"`}, nil},
		{"out of range", `{"apps":[{"port":70000}]}`, []string{"apps[0].port: want a whole number from 0 to 65535, got 70000"}, nil},
		{"object expected", `{"dmsg":[1]}`, []string{"dmsg: want an object, got a list"}, nil},
		{"list expected", `{"apps":{"a":1}}`, []string{"apps: want a list, got an object"}, nil},
		{"bad key value", `{"pk":"02zz"}`, []string{"pk: public key", "wrong length"}, cipher.ErrLength},
		{"bad map key", `{"pk_table":{"nope":"1.2.3.4:5"}}`, []string{`pk_table["nope"]: bad key: public key`}, cipher.ErrLength},
		{"trailing data", "{\"version\":\"v1\"}\n{}", []string{"line 2: unexpected data after the top-level object"}, nil},
		{"empty", "  \n", []string{"the file is empty"}, nil},
		{"truncated", `{"version":"v1","dmsg":{`, []string{"ends early"}, nil},
		{"syntax", "{\n\"version\": \"v1\",\n}", []string{"line 3: invalid JSON"}, nil},
		{"not an object", `[1,2]`, []string{"want an object, got a list"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			err := Decode([]byte(tt.in), &s)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not contain %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestSaveLoadAndMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.json")
	var s sample
	s.Version = "v1"
	if err := Save(path, &s); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	var back sample
	if err := Load(path, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s, back) {
		t.Fatalf("round trip: %+v != %+v", back, s)
	}
	s.Version = "v2"
	if err := Save(path, &s); err != nil {
		t.Fatal(err)
	}
	if err := Load(path, &back); err != nil || back.Version != "v2" {
		t.Fatalf("Save did not replace: %v %q", err, back.Version)
	}
	assertNoTemp(t, dir)
}

func TestCreateNeverTouchesExisting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.json")
	orig := []byte("hand-edited, not even JSON\n")
	if err := os.WriteFile(path, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Create(path, &sample{Version: "v1"})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("Create over an existing file: err = %v, want ErrExists", err)
	}
	got, _ := os.ReadFile(path)
	if string(got) != string(orig) {
		t.Fatal("existing file was modified")
	}
	fi, _ := os.Stat(path)
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o644 {
		t.Fatal("existing file's mode was changed")
	}
	assertNoTemp(t, dir)

	fresh := filepath.Join(dir, "new.json")
	if err := Create(fresh, &sample{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	var back sample
	if err := Load(fresh, &back); err != nil || back.Version != "v1" {
		t.Fatalf("created file: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	err := Load(filepath.Join(t.TempDir(), "nope.json"), &sample{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestProblems(t *testing.T) {
	var p Problems
	if p.Err() != nil {
		t.Fatal("empty Problems has an error")
	}
	p.URL("dmsg.discovery", "ftp://x")
	p.URL("ok", "")
	p.URL("ok2", "https://example.com:9090")
	p.HostPort("stcp.local_address", "7777", true)
	p.HostPort("listen", ":7777", true)
	p.HostPort("dial", ":7777", false)
	p.HostPort("dial0", "1.2.3.4:0", false)
	p.LogLevel("log_level", "verbose")
	err := p.Err()
	for _, w := range []string{
		`dmsg.discovery: "ftp://x": want an http:// or https:// URL`,
		`stcp.local_address: "7777": want "host:port"`,
		`dial: ":7777": the host is missing`,
		`dial0: "1.2.3.4:0": port 0 cannot be dialled`,
		`log_level: "verbose": want one of debug, info, warn, error`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 5 {
		t.Errorf("got %d problems, want 5:\n%v", n, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(`{"version":"v1","dmsg":{"discovery":"http://x","sessions_count":2},"apps":[{"app":"a","port":1}]}`)
	f.Add(`{"pk_table":{"` + pk1 + `":"x"}}`)
	f.Add(`{"opt":{"on":true}}`)
	f.Fuzz(func(t *testing.T, in string) {
		var s sample
		if err := Decode([]byte(in), &s); err != nil {
			return
		}
		// Whatever decodes must survive our own write and read.
		b, err := Marshal(&s)
		if err != nil {
			t.Fatal(err)
		}
		var back sample
		if err := Decode(b, &back); err != nil {
			t.Fatalf("re-decoding our own output: %v\n%s", err, b)
		}
	})
}

// A write killed before its rename leaves a temporary file: the next write
// of the same file removes it (but not a fresh one, which may be another
// writer's, nor other files).
func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "skywire-config.json")
	stale := filepath.Join(dir, ".skywire-config.json.tmp-123")
	fresh := filepath.Join(dir, ".skywire-config.json.tmp-456")
	other := filepath.Join(dir, ".other.json.tmp-789")
	for _, p := range []string{stale, fresh, other} {
		if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Minute)
	os.Chtimes(stale, old, old)
	os.Chtimes(other, old, old)
	if err := WriteFile(path, []byte("{}\n"), Mode, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("the stale temporary file is still there")
	}
	for _, p := range []string{fresh, other} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s removed: %v", p, err)
		}
	}
}
