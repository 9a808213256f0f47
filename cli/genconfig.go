package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v2"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/internal/configfile"
)

// genConfigFlags are the flags every gen-config shares.
func genConfigFlags(defaultOut string) []ucli.Flag {
	return []ucli.Flag{
		&ucli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: defaultOut, Usage: "file to write"},
		&ucli.BoolFlag{Name: "testenv", Aliases: []string{"t"}, Usage: "use services on 127.0.0.1 at their default ports"},
		&ucli.StringFlag{Name: "svc", Usage: "use services on `HOST` at their default ports"},
		&ucli.StringFlag{Name: "sk", Usage: "use this secret key (64 hex characters; \"-\" reads it from stdin) instead of a new one"},
		&ucli.BoolFlag{Name: "regen", Aliases: []string{"r"}, Usage: "replace the existing file, keeping its keys"},
		&ucli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace an existing file (the old one is kept as FILE.bak)"},
		&ucli.BoolFlag{Name: "stdout", Aliases: []string{"n"}, Usage: "print the config instead of writing it"},
		&ucli.BoolFlag{Name: "json", Usage: "report what was written as JSON"},
	}
}

// checkable is a config gen-config can check and write.
type checkable interface{ Validate() error }

// genConfig is the body of every gen-config: choose the services host and the
// key, let build make the config from them, check it and emit it.
func genConfig(c *ucli.Context, e env, build func(sk cipher.SecKey, host string) (checkable, error)) error {
	if c.NArg() > 0 {
		return usagef("gen-config takes no arguments (got %q); the file is -o", c.Args().First())
	}
	host, err := servicesHost(c)
	if err != nil {
		return err
	}
	out := c.String("output")
	sk, err := secretKey(c, e, out)
	if err != nil {
		return err
	}
	cfg, err := build(sk, host)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usagef("the flags make an invalid config:\n%v", err)
	}
	return emitConfig(c, e, out, cfg, sk.PubKey())
}

// servicesHost is the host -t or --svc asks for, or "".
func servicesHost(c *ucli.Context) (string, error) {
	if c.Bool("testenv") && c.IsSet("svc") {
		return "", usagef("-t and --svc both choose the services; give one")
	}
	if c.Bool("testenv") {
		return "127.0.0.1", nil
	}
	h := c.String("svc")
	if strings.ContainsAny(h, ":/") && !strings.HasPrefix(h, "[") {
		return "", usagef("--svc takes a host name or IP address, not %q (the default ports are used)", h)
	}
	return strings.Trim(h, "[]"), nil
}

// secretKey returns the key for a new config: --sk, the existing file's (-r),
// or a fresh one.
func secretKey(c *ucli.Context, e env, out string) (cipher.SecKey, error) {
	if c.IsSet("sk") && c.Bool("regen") {
		return cipher.SecKey{}, usagef("--sk and -r both choose the key; give one")
	}
	if c.Bool("regen") {
		sk, err := existingKey(out)
		if err != nil {
			return cipher.SecKey{}, fmt.Errorf("-r keeps the keys of %s, but: %w", out, err)
		}
		if sk.IsZero() {
			return cipher.SecKey{}, fmt.Errorf("-r keeps the keys of %s, but it has no sk", out)
		}
		return sk, nil
	}
	if !c.IsSet("sk") {
		_, sk := cipher.GenerateKeyPair()
		return sk, nil
	}
	text := c.String("sk")
	if text == "-" {
		line, err := bufio.NewReader(e.stdin).ReadString('\n')
		if err != nil && line == "" {
			return cipher.SecKey{}, fmt.Errorf("--sk -: reading the key from stdin: %w", err)
		}
		text = strings.TrimSpace(line)
	}
	sk, err := cipher.ParseSecKey(text)
	if err != nil {
		return cipher.SecKey{}, usagef("--sk: %v", err)
	}
	return sk, nil
}

// existingKey reads the "sk" of the config at path, whatever its kind: only
// that key is decoded, so -r works on any config this build wrote.
func existingKey(path string) (cipher.SecKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return cipher.SecKey{}, err
	}
	var keys struct {
		SK cipher.SecKey `json:"sk"`
	}
	if err := json.Unmarshal(data, &keys); err != nil {
		return cipher.SecKey{}, fmt.Errorf("reading sk: %w", err)
	}
	return keys.SK, nil
}

// genResult is what gen-config reports with --json.
type genResult struct {
	Path   string        `json:"path"`
	PK     cipher.PubKey `json:"pk"`
	Backup string        `json:"backup,omitempty"`
}

// emitConfig prints cfg (-n) or writes it to path: exclusively, or, with -f
// or -r, replacing the file after copying it to path.bak.
func emitConfig(c *ucli.Context, e env, path string, cfg any, pk cipher.PubKey) error {
	if c.Bool("stdout") {
		b, err := configfile.Marshal(cfg)
		if err != nil {
			return err
		}
		_, err = e.stdout.Write(b)
		return err
	}
	res := genResult{Path: path, PK: pk}
	replace := c.Bool("force") || c.Bool("regen")
	if !replace {
		err := configfile.Create(path, cfg)
		if errors.Is(err, configfile.ErrExists) {
			return fmt.Errorf("%s already exists and was left as it is: -f replaces it (keeping a backup), -r replaces it keeping its keys", path)
		}
		if err != nil {
			return err
		}
	} else {
		old, err := os.ReadFile(path)
		switch {
		case err == nil:
			res.Backup = path + ".bak"
			if err := configfile.WriteFile(res.Backup, old, configfile.Mode, true); err != nil {
				return fmt.Errorf("keeping a backup of %s: %w", path, err)
			}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := configfile.Save(path, cfg); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "wrote %s (public key %s)\n", res.Path, res.PK)
	if res.Backup != "" {
		fmt.Fprintf(e.stdout, "the previous file is kept as %s\n", res.Backup)
	}
	return nil
}
