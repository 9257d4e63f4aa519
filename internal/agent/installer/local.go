package installer

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"kok.dev/internal/agent/state"
)

// LocalPackagesDir is where the local installer keeps packages, under the host root.
const LocalPackagesDir = "opt/kok/packages"

// digestFile, inside a version directory, holds the digest of the artifact it was unpacked from:
// a directory unpacked from another artifact (another build under the same version) is not
// taken for this one.
const digestFile = ".kok-artifact-sha256"

// Local installs tar.gz artifacts into versioned directories under the host root.
type Local struct {
	Root string
}

func (l *Local) base(name string) string { return filepath.Join(l.Root, LocalPackagesDir, name) }

// PackageDir is <root>/opt/kok/packages/<name>/<version>.
func (l *Local) PackageDir(p Package) string { return filepath.Join(l.base(p.Name), p.Version) }

// Current returns the version the "current" symlink points at ("" when none).
func (l *Local) Current(name string) string {
	target, err := os.Readlink(filepath.Join(l.base(name), "current"))
	if err != nil {
		return ""
	}
	return target
}

// Staged reports whether p's directory exists and was unpacked from p's artifact.
func (l *Local) Staged(p Package) bool {
	data, err := os.ReadFile(filepath.Join(l.PackageDir(p), digestFile))
	if err != nil {
		return false
	}
	return p.SHA256 == "" || strings.TrimSpace(string(data)) == p.SHA256
}

// Installed reports whether p is staged and current.
func (l *Local) Installed(_ context.Context, p Package) (bool, error) {
	return l.Current(p.Name) == p.Version && l.Staged(p), nil
}

// Install unpacks p (unless staged) and makes it current.
func (l *Local) Install(ctx context.Context, p Package, artifact string, progress func(string)) error {
	if !l.Staged(p) {
		if artifact == "" {
			return fmt.Errorf("install %s: not unpacked and no artifact given", p)
		}
		if err := l.unpack(ctx, p, artifact, progress); err != nil {
			return fmt.Errorf("unpack %s: %w", p, err)
		}
	}
	if l.Current(p.Name) == p.Version {
		return nil
	}
	base := l.base(p.Name)
	tmp := filepath.Join(base, ".current.tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(p.Version, tmp); err != nil {
		return fmt.Errorf("switch %s to %s: %w", p.Name, p.Version, err)
	}
	// rename(2) replaces the old link in one step: readers see the old version or the new.
	if err := os.Rename(tmp, filepath.Join(base, "current")); err != nil {
		return fmt.Errorf("switch %s to %s: %w", p.Name, p.Version, err)
	}
	return state.SyncDir(base)
}

// unpack extracts the artifact next to its final place and renames it there.
func (l *Local) unpack(ctx context.Context, p Package, artifact string, progress func(string)) error {
	base := l.base(p.Name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(base, ".unpack-"+p.Version+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // empty after a successful rename
	if err := extractTarGz(ctx, artifact, tmp, progress); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, digestFile), []byte(p.SHA256+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	final := l.PackageDir(p)
	// A directory of the same version from another artifact is set aside, then replaced.
	if _, err := os.Lstat(final); err == nil {
		old := final + ".replaced"
		_ = os.RemoveAll(old)
		if err := os.Rename(final, old); err != nil {
			return err
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return state.SyncDir(base)
}

// Prune removes versions of name other than keep, and leftovers of interrupted unpacks.
func (l *Local) Prune(name string, keep ...string) error {
	entries, err := os.ReadDir(l.base(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if n == "current" || !e.IsDir() && !strings.HasPrefix(n, ".") {
			continue
		}
		kept := false
		for _, k := range keep {
			kept = kept || n == k
		}
		if !kept {
			errs = append(errs, os.RemoveAll(filepath.Join(l.base(name), n)))
		}
	}
	return errors.Join(errs...)
}

// Remove deletes every version of name.
func (l *Local) Remove(_ context.Context, name string) error {
	if err := os.RemoveAll(l.base(name)); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// extractTarGz unpacks a tar.gz into dir, refusing entries that would land outside it.
func extractTarGz(ctx context.Context, path, dir string, progress func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("artifact is not gzip: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var written int64
	nextReport := int64(8 << 20)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("artifact is not a valid tar.gz: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name, err := safeName(hdr.Name)
		if err != nil {
			return err
		}
		if name == "" {
			continue
		}
		target := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := hdr.FileInfo().Mode().Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			c, err := io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
			written += c
		case tar.TypeSymlink:
			if filepath.IsAbs(hdr.Linkname) || !filepath.IsLocal(filepath.Join(filepath.Dir(name), hdr.Linkname)) {
				return fmt.Errorf("artifact entry %q links outside the package (%q)", hdr.Name, hdr.Linkname)
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := safeName(hdr.Linkname)
			if err != nil || src == "" {
				return fmt.Errorf("artifact entry %q links outside the package (%q)", hdr.Name, hdr.Linkname)
			}
			if err := os.Link(filepath.Join(dir, src), target); err != nil {
				return err
			}
		default:
			return fmt.Errorf("artifact entry %q has unsupported type %q", hdr.Name, string(hdr.Typeflag))
		}
		if progress != nil && (written >= nextReport || n%256 == 255) {
			progress(fmt.Sprintf("unpacked %d entries, %d bytes", n+1, written))
			nextReport = written + 8<<20
		}
	}
}

// safeName cleans a tar entry name; "" is the archive root.
func safeName(name string) (string, error) {
	clean := filepath.Clean(strings.TrimPrefix(name, "./"))
	if clean == "." || clean == "" {
		return "", nil
	}
	if !filepath.IsLocal(clean) {
		return "", fmt.Errorf("artifact entry %q points outside the package", name)
	}
	return clean, nil
}
