package installer

import (
	"context"
	"fmt"
	"strings"
)

// RPM installs .rpm artifacts. On the real system (Root "/") a first install goes through dnf,
// which resolves dependencies from the host's repositories, and a change of version through
// rpm -U --oldpackage, which moves in either direction in one step (dnf needs a different verb
// for a downgrade); on an alternate root everything goes through rpm --root.
type RPM struct {
	Root string
	Run  Runner
}

func (r *RPM) realSystem() bool { return r.Root == "/" || r.Root == "" }

func (r *RPM) rootArgs() []string {
	if r.realSystem() {
		return nil
	}
	return []string{"--root", r.Root}
}

// Staged is always false: an rpm is installed from its artifact.
func (r *RPM) Staged(Package) bool { return false }

// PackageDir is "": rpm spreads a package over the file system.
func (r *RPM) PackageDir(Package) string { return "" }

// Installed asks rpm whether p's version is installed.
func (r *RPM) Installed(ctx context.Context, p Package) (bool, error) {
	versions, err := r.query(ctx, p.Name)
	if err != nil {
		return false, err
	}
	for _, v := range versions {
		if RPMVersionMatches(v, p.Version) {
			return true, nil
		}
	}
	return false, nil
}

// query returns the installed VERSION-RELEASE strings of name (none when absent).
func (r *RPM) query(ctx context.Context, name string) ([]string, error) {
	args := append(r.rootArgs(), "--query", "--queryformat", "%{VERSION}-%{RELEASE}\n", name)
	out, err := r.Run.Run(ctx, nil, "rpm", args...)
	if err != nil {
		if strings.Contains(string(out), "is not installed") {
			return nil, nil
		}
		return nil, fmt.Errorf("query rpm for %s: %w", name, err)
	}
	return strings.Fields(string(out)), nil
}

// Install installs the artifact after checking that it is the package and version asked for.
func (r *RPM) Install(ctx context.Context, p Package, artifact string, _ func(string)) error {
	installed, err := r.query(ctx, p.Name)
	if err != nil {
		return err
	}
	for _, v := range installed {
		if RPMVersionMatches(v, p.Version) {
			return nil
		}
	}
	if artifact == "" {
		return fmt.Errorf("install %s: no artifact given", p)
	}
	out, err := r.Run.Run(ctx, nil, "rpm", "--query", "--package", "--queryformat", "%{NAME}|%{VERSION}-%{RELEASE}", artifact)
	if err != nil {
		return fmt.Errorf("read %s artifact: %w", p, err)
	}
	name, version, _ := strings.Cut(strings.TrimSpace(string(out)), "|")
	if name != p.Name || !RPMVersionMatches(version, p.Version) {
		return fmt.Errorf("artifact of %s is the rpm package %s %s", p, name, version)
	}
	switch {
	case r.realSystem() && len(installed) == 0:
		_, err = r.Run.Run(ctx, nil, "dnf", "install", "--assumeyes", artifact)
	default:
		_, err = r.Run.Run(ctx, nil, "rpm", append(r.rootArgs(), "--upgrade", "--oldpackage", "--replacepkgs", artifact)...)
	}
	if err != nil {
		return fmt.Errorf("install %s: %w", p, err)
	}
	return nil
}

// Remove erases the package.
func (r *RPM) Remove(ctx context.Context, name string) error {
	installed, err := r.query(ctx, name)
	if err != nil || len(installed) == 0 {
		return err
	}
	if r.realSystem() {
		_, err = r.Run.Run(ctx, nil, "dnf", "remove", "--assumeyes", name)
	} else {
		_, err = r.Run.Run(ctx, nil, "rpm", append(r.rootArgs(), "--erase", name)...)
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// RPMVersionMatches reports whether an rpm VERSION-RELEASE is want: the whole of it, or its
// VERSION part.
func RPMVersionMatches(have, want string) bool {
	if have == want {
		return true
	}
	i := strings.LastIndexByte(have, '-')
	return i > 0 && have[:i] == want
}
