package configfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Mode is the permission of every config file we write: they hold secret keys.
const Mode fs.FileMode = 0o600

// ErrExists is returned by Create when the file is already there.
var ErrExists = errors.New("file already exists")

// Marshal is the canonical text of a config: indented JSON with a final newline.
func Marshal(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Load reads path and strictly decodes it into v. Errors start with the path.
func Load(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := Decode(data, v); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Save writes v to path atomically with mode 0600, replacing any file there.
// A crash at any moment leaves either the old file or the new one, complete.
func Save(path string, v any) error {
	data, err := Marshal(v)
	if err != nil {
		return err
	}
	return WriteFile(path, data, Mode, true)
}

// Create writes v to path atomically with mode 0600, but only if no file is
// there: an existing file is never touched (ErrExists).
func Create(path string, v any) error {
	data, err := Marshal(v)
	if err != nil {
		return err
	}
	return WriteFile(path, data, Mode, false)
}

// WriteFile writes data through a temporary file in the same directory, synced
// before it is renamed (or, without replace, hard-linked, which fails if the
// name exists) into place; the directory is synced after.
func WriteFile(path string, data []byte, perm fs.FileMode, replace bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	removeStaleTemps(dir, base)
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op once renamed
	err = tmp.Chmod(perm)
	if err != nil && runtime.GOOS != "windows" {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if replace {
		err = os.Rename(tmpName, path)
	} else {
		err = createExclusive(tmpName, path)
	}
	if err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

func createExclusive(tmpName, path string) error {
	err := os.Link(tmpName, path)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("write %s: %w", path, ErrExists)
	}
	// Some filesystems have no hard links: check, then rename.
	if _, statErr := os.Lstat(path); statErr == nil {
		return fmt.Errorf("write %s: %w", path, ErrExists)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncDir makes a rename durable. Windows cannot open directories; there the
// rename is already durable enough.
func syncDir(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// staleTemp is how old a temporary file of WriteFile must be to count as
// left by a writer that died (a write takes milliseconds).
const staleTemp = 10 * time.Second

// removeStaleTemps deletes the temporary files a killed WriteFile of
// dir/base left behind.
func removeStaleTemps(dir, base string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := "." + base + ".tmp-"
	for _, e := range ents {
		if !e.Type().IsRegular() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTemp {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
