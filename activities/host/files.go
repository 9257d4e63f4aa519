package host

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"kok.dev/contract/hostapi"

	"kok.dev/internal/agent/state"
)

// configDrift says how the file on disk differs from f, or "" when it matches.
func (a *Activities) configDrift(f hostapi.ConfigFile) (string, error) {
	p := a.path(f.Path)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "missing", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspect %s: %w", f.Path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Sprintf("is a %s, not a file", fi.Mode().Type()), nil
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f.Path, err)
	}
	if !bytes.Equal(data, []byte(f.Content)) {
		return "content differed", nil
	}
	if got := uint32(fi.Mode().Perm()); got != f.Mode {
		return fmt.Sprintf("mode %#o, want %#o", got, f.Mode), nil
	}
	return "", nil
}

// ensureConfigs writes every file of files that is not as specified and says what it rewrote.
func (a *Activities) ensureConfigs(files []hostapi.ConfigFile) ([]string, error) {
	var fixed []string
	for _, f := range files {
		why, err := a.configDrift(f)
		if err != nil {
			return fixed, err
		}
		if why == "" {
			continue
		}
		p := a.path(f.Path)
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			return fixed, fmt.Errorf("config file %s: a directory is in the way", f.Path)
		}
		if err := state.WriteFileAtomic(p, []byte(f.Content), fs.FileMode(f.Mode)); err != nil {
			return fixed, fmt.Errorf("write %s: %w", f.Path, err)
		}
		fixed = append(fixed, fmt.Sprintf("rewrote %s (%s)", f.Path, why))
	}
	return fixed, nil
}

// removeConfigs deletes the files of old whose paths keep does not list.
func (a *Activities) removeConfigs(old, keep []hostapi.ConfigFile) error {
	kept := map[string]bool{}
	for _, f := range keep {
		kept[f.Path] = true
	}
	var errs []error
	for _, f := range old {
		if kept[f.Path] {
			continue
		}
		if err := os.Remove(a.path(f.Path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", f.Path, err))
		}
	}
	return errors.Join(errs...)
}

// sysctlPath is the package's sysctl.d file as seen from the host.
func sysctlPath(pkg string) string { return "/" + SysctlDir + "/kok-" + pkg + ".conf" }

func renderSysctls(pkg string, m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by kok-agent for package %s; edits are reverted.\n", pkg)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, m[k])
	}
	return b.Bytes()
}

// ensureSysctls makes the package's sysctl.d file hold m (so the settings survive a reboot) and,
// on a real host, sets each value in /proc/sys. It says what it changed.
func (a *Activities) ensureSysctls(pkg string, m map[string]string) ([]string, error) {
	if len(m) == 0 {
		return nil, a.removeSysctls(pkg)
	}
	var fixed []string
	rel := sysctlPath(pkg)
	want := renderSysctls(pkg, m)
	have, err := os.ReadFile(a.path(rel))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	if !bytes.Equal(have, want) {
		if err := state.WriteFileAtomic(a.path(rel), want, 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", rel, err)
		}
		why := "content differed"
		if have == nil {
			why = "missing"
		}
		fixed = append(fixed, fmt.Sprintf("rewrote %s (%s)", rel, why))
	}
	if a.Simulate {
		return fixed, nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := procSysPath(k)
		cur, err := os.ReadFile(p)
		if err != nil {
			return fixed, fmt.Errorf("read sysctl %s: %w", k, err)
		}
		if strings.Join(strings.Fields(string(cur)), " ") == strings.Join(strings.Fields(m[k]), " ") {
			continue
		}
		if err := os.WriteFile(p, []byte(m[k]), 0o644); err != nil {
			return fixed, fmt.Errorf("set sysctl %s to %q: %w", k, m[k], err)
		}
		fixed = append(fixed, fmt.Sprintf("set sysctl %s to %s (was %s)", k, m[k], strings.TrimSpace(string(cur))))
	}
	return fixed, nil
}

// removeSysctls deletes the package's sysctl.d file. Values already set in the running kernel
// stay until the next boot: the agent does not know what they were before.
func (a *Activities) removeSysctls(pkg string) error {
	if err := os.Remove(a.path(sysctlPath(pkg))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", sysctlPath(pkg), err)
	}
	return nil
}

// procSysPath maps a sysctl name to its file: dots separate levels unless the name uses
// slashes, as sysctl(8) reads them.
func procSysPath(key string) string {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	return filepath.Join("/proc/sys", key)
}
