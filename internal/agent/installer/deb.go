package installer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Deb installs .deb artifacts. On the real system (Root "/") it uses apt-get, which resolves
// dependencies from the host's repositories and moves between versions in either direction; on
// an alternate root it uses dpkg --root with that root's own database and log, so nothing
// outside the root changes.
type Deb struct {
	Root string
	Run  Runner
}

func (d *Deb) realSystem() bool { return d.Root == "/" || d.Root == "" }

func (d *Deb) admindir() string { return filepath.Join(d.Root, "var/lib/dpkg") }

// dpkgArgs are the options every dpkg call on an alternate root needs.
func (d *Deb) dpkgArgs() []string {
	args := []string{"--root=" + d.Root, "--admindir=" + d.admindir(), "--log=" + filepath.Join(d.Root, "var/log/dpkg.log")}
	if os.Geteuid() != 0 {
		args = append(args, "--force-not-root")
	}
	return args
}

func (d *Deb) queryArgs() []string {
	if d.realSystem() {
		return nil
	}
	return []string{"--admindir=" + d.admindir()}
}

// Staged is always false: a deb is installed from its artifact.
func (d *Deb) Staged(Package) bool { return false }

// PackageDir is "": dpkg spreads a package over the file system.
func (d *Deb) PackageDir(Package) string { return "" }

// Installed asks dpkg whether p's version is installed (status "ii").
func (d *Deb) Installed(ctx context.Context, p Package) (bool, error) {
	status, version, err := d.query(ctx, p.Name)
	if err != nil {
		return false, err
	}
	return status == "ii" && DebVersionMatches(version, p.Version), nil
}

// query returns dpkg's status abbreviation and version of name ("" when dpkg does not know it).
func (d *Deb) query(ctx context.Context, name string) (string, string, error) {
	args := append(d.queryArgs(), "--show", "--showformat=${db:Status-Abbrev}|${Version}", name)
	out, err := d.Run.Run(ctx, nil, "dpkg-query", args...)
	if err != nil {
		if strings.Contains(string(out), "no packages found") {
			return "", "", nil
		}
		return "", "", fmt.Errorf("query dpkg for %s: %w", name, err)
	}
	status, version, _ := strings.Cut(strings.TrimSpace(string(out)), "|")
	return strings.TrimSpace(status), version, nil
}

// Install installs the artifact after checking that it is the package and version asked for.
func (d *Deb) Install(ctx context.Context, p Package, artifact string, _ func(string)) error {
	if ok, err := d.Installed(ctx, p); err != nil || ok {
		return err
	}
	if artifact == "" {
		return fmt.Errorf("install %s: no artifact given", p)
	}
	out, err := d.Run.Run(ctx, nil, "dpkg-deb", "--show", "--showformat=${Package}|${Version}", artifact)
	if err != nil {
		return fmt.Errorf("read %s artifact: %w", p, err)
	}
	name, version, _ := strings.Cut(strings.TrimSpace(string(out)), "|")
	if name != p.Name || !DebVersionMatches(version, p.Version) {
		return fmt.Errorf("artifact of %s is the deb package %s %s", p, name, version)
	}
	if d.realSystem() {
		_, err = d.Run.Run(ctx, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", "install", "--yes",
			"--allow-downgrades", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold", artifact)
	} else {
		if err := d.initAdmindir(); err != nil {
			return err
		}
		_, err = d.Run.Run(ctx, nil, "dpkg", append(d.dpkgArgs(), "--install", artifact)...)
	}
	if err != nil {
		return fmt.Errorf("install %s: %w", p, err)
	}
	return nil
}

// Remove purges the package (files and its conffiles).
func (d *Deb) Remove(ctx context.Context, name string) error {
	status, _, err := d.query(ctx, name)
	if err != nil {
		return err
	}
	if status == "" || strings.HasPrefix(status, "un") || strings.HasPrefix(status, "pn") {
		return nil
	}
	if d.realSystem() {
		_, err = d.Run.Run(ctx, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", "purge", "--yes", name)
	} else {
		_, err = d.Run.Run(ctx, nil, "dpkg", append(d.dpkgArgs(), "--purge", name)...)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// initAdmindir creates an empty dpkg database in an alternate root that has none.
func (d *Deb) initAdmindir() error {
	for _, dir := range []string{"info", "updates"} {
		if err := os.MkdirAll(filepath.Join(d.admindir(), dir), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(d.Root, "var/log"), 0o755); err != nil {
		return err
	}
	for _, f := range []string{"status", "available"} {
		p := filepath.Join(d.admindir(), f)
		if _, err := os.Stat(p); os.IsNotExist(err) {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// DebVersionMatches reports whether a Debian version ([epoch:]upstream[-revision]) is want:
// exactly, or with an epoch or a Debian revision added.
func DebVersionMatches(have, want string) bool {
	if _, rest, ok := strings.Cut(have, ":"); ok {
		have = rest
	}
	if have == want {
		return true
	}
	i := strings.LastIndexByte(have, '-')
	return i > 0 && have[:i] == want
}
