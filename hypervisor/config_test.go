package hypervisor

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/configfile"
)

func TestDefaultConfig(t *testing.T) {
	_, sk := cipher.GenerateKeyPair()
	c := DefaultConfig(sk)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8000" || c.DmsgPort != 46 {
		t.Fatalf("defaults: %+v", c)
	}
	c.UseServices("127.0.0.1")
	if c.Dmsg.Discovery != "http://127.0.0.1:9090" {
		t.Fatal(c.Dmsg.Discovery)
	}
	path := filepath.Join(t.TempDir(), "hv.json")
	if err := configfile.Save(path, &c); err != nil {
		t.Fatal(err)
	}
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.PK != c.PK || !got.SK.Equal(c.SK) {
		t.Fatal("keys changed in a round trip")
	}
}

func TestValidate(t *testing.T) {
	_, sk := cipher.GenerateKeyPair()
	other, _ := cipher.GenerateKeyPair()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"version", func(c *Config) { c.Version = "v0" }, `version: "v0"`},
		{"pk", func(c *Config) { c.PK = other }, "pk: \"" + other.Hex() + "\": does not belong to sk"},
		{"http", func(c *Config) { c.HTTPAddr = "8000" }, `http_addr: "8000"`},
		{"port", func(c *Config) { c.DmsgPort = 0 }, "dmsg_port: 0"},
		{"tls", func(c *Config) { c.EnableTLS = true; c.TLSKeyFile = "" }, "enable_tls: true: needs tls_cert_file and tls_key_file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig(sk)
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
