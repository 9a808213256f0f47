// Package hostcfg changes a host's network configuration (routes, rules,
// firewall, sysctls, files such as resolv.conf) and puts it back exactly.
// Every change is recorded, with how to undo it, in a state file that is
// written and synced before the change is made; Restore undoes them in
// reverse. A process that was killed leaves the file, and the next start
// (or `skywire cli vpn stop`) restores from it.
package hostcfg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// Step is one recorded undo: a command to run, or a file's old content to
// put back (Missing: the file did not exist).
type Step struct {
	What    string   `json:"what"` // for the log: what the change was
	Cmd     []string `json:"cmd,omitempty"`
	File    string   `json:"file,omitempty"`
	Content []byte   `json:"content,omitempty"`
	Mode    uint32   `json:"mode,omitempty"`
	Missing bool     `json:"missing,omitempty"`
}

// Journal records changes in a state file.
type Journal struct {
	path string
	run  func(args []string) error

	mu    sync.Mutex
	steps []Step
}

// Run runs a command, returning its output in the error when it fails.
func Run(args []string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Open reads the journal at path (steps a crashed process left, which
// Restore undoes), or starts an empty one. run executes commands (nil:
// Run).
func Open(path string, run func([]string) error) (*Journal, error) {
	if run == nil {
		run = Run
	}
	j := &Journal{path: path, run: run}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return j, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(data, &j.steps); err != nil {
		return nil, fmt.Errorf("state file %s is damaged (%v): restore the network by hand, then delete it", path, err)
	}
	return j, nil
}

// Pending reports whether there are changes to undo.
func (j *Journal) Pending() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.steps) > 0
}

// save writes the steps (the file is removed when there are none).
func (j *Journal) save() error {
	if len(j.steps) == 0 {
		if err := os.Remove(j.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	data, err := json.MarshalIndent(j.steps, "", " ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return err
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, j.path)
}

// Do records undo, then runs do. If do fails, the record is dropped.
func (j *Journal) Do(what string, do, undo []string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.steps = append(j.steps, Step{What: what, Cmd: undo})
	if err := j.save(); err != nil {
		j.steps = j.steps[:len(j.steps)-1]
		return fmt.Errorf("recording %s: %w", what, err)
	}
	if err := j.run(do); err != nil {
		j.steps = j.steps[:len(j.steps)-1]
		j.save()
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// WriteFile records path's content (or absence), then replaces it.
func (j *Journal) WriteFile(what, path string, content []byte, mode os.FileMode) error {
	old, err := os.ReadFile(path)
	step := Step{What: what, File: path, Content: old, Mode: uint32(mode)}
	switch {
	case errors.Is(err, os.ErrNotExist):
		step.Missing = true
	case err != nil:
		return err
	default:
		if fi, err := os.Stat(path); err == nil {
			step.Mode = uint32(fi.Mode().Perm())
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.steps = append(j.steps, step)
	if err := j.save(); err != nil {
		j.steps = j.steps[:len(j.steps)-1]
		return fmt.Errorf("recording %s: %w", what, err)
	}
	if err := replaceFile(path, content, mode); err != nil {
		j.steps = j.steps[:len(j.steps)-1]
		j.save()
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// replaceFile writes content to path in place: through a symlink such as
// /etc/resolv.conf, whose target Restore then rewrites.
func replaceFile(path string, content []byte, mode os.FileMode) error {
	return os.WriteFile(path, content, mode)
}

// Restore undoes every recorded change, newest first, and removes the
// state file. It goes on past a failed step and returns every failure.
func (j *Journal) Restore() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	for len(j.steps) > 0 {
		s := j.steps[len(j.steps)-1]
		var err error
		switch {
		case s.File != "" && s.Missing:
			err = os.Remove(s.File)
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		case s.File != "":
			err = os.WriteFile(s.File, s.Content, os.FileMode(s.Mode))
		case len(s.Cmd) > 0:
			err = j.run(s.Cmd)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("undoing %s: %w", s.What, err))
		}
		j.steps = j.steps[:len(j.steps)-1]
		if err := j.save(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
