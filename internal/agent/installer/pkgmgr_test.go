package installer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fakeRunner records command lines and answers from a table keyed by the command line's start.
type fakeRunner struct {
	calls   []string
	answers map[string]string // prefix of "name args..." -> output; "ERR:" prefix fails
}

func (f *fakeRunner) Run(_ context.Context, env []string, name string, args ...string) ([]byte, error) {
	line := strings.TrimSpace(strings.Join(env, " ") + " " + name + " " + strings.Join(args, " "))
	f.calls = append(f.calls, line)
	best := ""
	for prefix := range f.answers {
		if strings.HasPrefix(line, prefix) && len(prefix) > len(best) {
			best = prefix
		}
	}
	if best == "" {
		return nil, nil
	}
	out := f.answers[best]
	if rest, ok := strings.CutPrefix(out, "ERR:"); ok {
		return []byte(rest), errors.New("exit status 1")
	}
	return []byte(out), nil
}

func TestDebCommandLines(t *testing.T) {
	ctx := context.Background()
	p := Package{Name: "containerd", Version: "1.7.2"}
	t.Run("real system uses apt-get", func(t *testing.T) {
		r := &fakeRunner{answers: map[string]string{
			"dpkg-query": "ERR:dpkg-query: no packages found matching containerd",
			"dpkg-deb":   "containerd|1.7.2-1",
		}}
		d := &Deb{Root: "/", Run: r}
		require.NoError(t, d.Install(ctx, p, "/var/cache/kok/artifacts/abc", nil))
		require.Equal(t, []string{
			"dpkg-query --show --showformat=${db:Status-Abbrev}|${Version} containerd",
			"dpkg-deb --show --showformat=${Package}|${Version} /var/cache/kok/artifacts/abc",
			"DEBIAN_FRONTEND=noninteractive apt-get install --yes --allow-downgrades -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold /var/cache/kok/artifacts/abc",
		}, r.calls)

		r = &fakeRunner{answers: map[string]string{"dpkg-query": "ii |1.7.2-1"}}
		d = &Deb{Root: "/", Run: r}
		require.NoError(t, d.Install(ctx, p, "/x", nil), "installed already: nothing to do")
		require.Len(t, r.calls, 1)
		require.NoError(t, d.Remove(ctx, "containerd"))
		require.Equal(t, "DEBIAN_FRONTEND=noninteractive apt-get purge --yes containerd", r.calls[len(r.calls)-1])
	})
	t.Run("alternate root uses dpkg --root", func(t *testing.T) {
		root := t.TempDir()
		r := &fakeRunner{answers: map[string]string{
			"dpkg-query": "ERR:dpkg-query: no packages found matching containerd",
			"dpkg-deb":   "containerd|1:1.7.2",
		}}
		d := &Deb{Root: root, Run: r}
		require.NoError(t, d.Install(ctx, p, "/a.deb", nil))
		want := fmt.Sprintf("dpkg --root=%s --admindir=%s/var/lib/dpkg --log=%s/var/log/dpkg.log", root, root, root)
		if os.Geteuid() != 0 {
			want += " --force-not-root"
		}
		require.Equal(t, fmt.Sprintf("dpkg-query --admindir=%s/var/lib/dpkg --show --showformat=${db:Status-Abbrev}|${Version} containerd", root), r.calls[0])
		require.Equal(t, want+" --install /a.deb", r.calls[2])
		require.FileExists(t, filepath.Join(root, "var/lib/dpkg/status"), "an empty database is created")
	})
	t.Run("wrong artifact", func(t *testing.T) {
		r := &fakeRunner{answers: map[string]string{
			"dpkg-query": "ERR:dpkg-query: no packages found matching containerd",
			"dpkg-deb":   "runc|1.1.0",
		}}
		err := (&Deb{Root: "/", Run: r}).Install(ctx, p, "/a.deb", nil)
		require.ErrorContains(t, err, "artifact of containerd 1.7.2 is the deb package runc 1.1.0")
		require.Len(t, r.calls, 2, "nothing installed")
	})
}

func TestRPMCommandLines(t *testing.T) {
	ctx := context.Background()
	p := Package{Name: "containerd", Version: "1.7.2"}
	t.Run("real system: dnf first, rpm -U to change versions", func(t *testing.T) {
		r := &fakeRunner{answers: map[string]string{
			"rpm --query --queryformat": "ERR:package containerd is not installed",
			"rpm --query --package":     "containerd|1.7.2-3.el9",
		}}
		d := &RPM{Root: "/", Run: r}
		require.NoError(t, d.Install(ctx, p, "/c.rpm", nil))
		require.Equal(t, []string{
			"rpm --query --queryformat %{VERSION}-%{RELEASE}\n containerd",
			"rpm --query --package --queryformat %{NAME}|%{VERSION}-%{RELEASE} /c.rpm",
			"dnf install --assumeyes /c.rpm",
		}, r.calls)

		r = &fakeRunner{answers: map[string]string{
			"rpm --query --queryformat": "1.8.0-1.el9\n",
			"rpm --query --package":     "containerd|1.7.2-3.el9",
		}}
		d = &RPM{Root: "/", Run: r}
		require.NoError(t, d.Install(ctx, p, "/c.rpm", nil))
		require.Equal(t, "rpm --upgrade --oldpackage --replacepkgs /c.rpm", r.calls[2])
		require.NoError(t, d.Remove(ctx, "containerd"))
		require.Equal(t, "dnf remove --assumeyes containerd", r.calls[len(r.calls)-1])
	})
	t.Run("alternate root", func(t *testing.T) {
		r := &fakeRunner{answers: map[string]string{
			"rpm --root /h --query --queryformat": "ERR:package containerd is not installed",
			"rpm --query --package":               "containerd|1.7.2-1",
		}}
		d := &RPM{Root: "/h", Run: r}
		require.NoError(t, d.Install(ctx, p, "/c.rpm", nil))
		require.Equal(t, "rpm --root /h --upgrade --oldpackage --replacepkgs /c.rpm", r.calls[2])
		r.answers["rpm --root /h --query --queryformat"] = "1.7.2-1\n"
		ok, err := d.Installed(ctx, p)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, d.Remove(ctx, "containerd"))
		require.Equal(t, "rpm --root /h --erase containerd", r.calls[len(r.calls)-1])
	})
}

func TestVersionMatching(t *testing.T) {
	require.True(t, DebVersionMatches("1.7.2", "1.7.2"))
	require.True(t, DebVersionMatches("1.7.2-1ubuntu1", "1.7.2"))
	require.True(t, DebVersionMatches("2:1.7.2-1", "1.7.2"))
	require.False(t, DebVersionMatches("1.7.20", "1.7.2"))
	require.False(t, DebVersionMatches("1.7.2.1-1", "1.7.2"))
	require.True(t, RPMVersionMatches("1.7.2-3.el9", "1.7.2"))
	require.True(t, RPMVersionMatches("1.7.2-3.el9", "1.7.2-3.el9"))
	require.False(t, RPMVersionMatches("1.7.21-1", "1.7.2"))
}

// buildDeb builds a tiny .deb of name/version holding /usr/bin/<name> that prints the version.
func buildDeb(t *testing.T, dir, name, version string) string {
	t.Helper()
	pkg := filepath.Join(dir, name+"-"+version)
	require.NoError(t, os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(pkg, "usr/bin"), 0o755))
	control := fmt.Sprintf("Package: %s\nVersion: %s-1\nArchitecture: all\nMaintainer: kok tests <kok@example.invalid>\nDescription: kok test package\n", name, version)
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "DEBIAN/control"), []byte(control), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "usr/bin", name), []byte("#!/bin/sh\necho "+version+"\n"), 0o755))
	out := pkg + ".deb"
	b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", pkg, out).CombinedOutput()
	require.NoError(t, err, "%s", b)
	return out
}

func TestDebRoundTrip(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "dpkg", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the deb installer's real round trip needs dpkg (apt-get install dpkg)", tool)
		}
	}
	ctx := context.Background()
	root, src := t.TempDir(), t.TempDir()
	d := &Deb{Root: root, Run: ExecRunner{}}
	v1 := Package{Name: "kok-test-tool", Version: "1.0.0"}
	v2 := Package{Name: "kok-test-tool", Version: "1.1.0"}
	deb1, deb2 := buildDeb(t, src, v1.Name, v1.Version), buildDeb(t, src, v2.Name, v2.Version)
	bin := filepath.Join(root, "usr/bin/kok-test-tool")

	require.NoError(t, d.Install(ctx, v1, deb1, nil))
	ok, err := d.Installed(ctx, v1)
	require.NoError(t, err)
	require.True(t, ok)
	requireContent(t, bin, "echo 1.0.0")
	require.FileExists(t, filepath.Join(root, "var/log/dpkg.log"), "dpkg logs inside the root, not on the machine")

	require.NoError(t, d.Install(ctx, v2, deb2, nil), "upgrade")
	requireContent(t, bin, "echo 1.1.0")
	ok, err = d.Installed(ctx, v1)
	require.NoError(t, err)
	require.False(t, ok)

	require.NoError(t, d.Install(ctx, v1, deb1, nil), "downgrade")
	requireContent(t, bin, "echo 1.0.0")
	require.NoError(t, d.Install(ctx, v1, "", nil), "installed: no artifact needed")

	require.NoError(t, d.Remove(ctx, v1.Name))
	require.NoFileExists(t, bin)
	ok, err = d.Installed(ctx, v1)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, d.Remove(ctx, v1.Name), "removing an absent package succeeds")
}

// buildRPM builds a tiny noarch .rpm with rpmbuild.
func buildRPM(t *testing.T, dir, name, version string) string {
	t.Helper()
	spec := fmt.Sprintf(`Name: %[1]s
Version: %[2]s
Release: 1
Summary: kok test package
License: MIT
BuildArch: noarch
AutoReqProv: no
%%description
kok test package
%%install
mkdir -p %%{buildroot}/usr/bin
printf '#!/bin/sh\necho %[2]s\n' > %%{buildroot}/usr/bin/%[1]s
chmod 755 %%{buildroot}/usr/bin/%[1]s
%%files
/usr/bin/%[1]s
`, name, version)
	top := filepath.Join(dir, "top-"+version)
	specPath := filepath.Join(dir, name+"-"+version+".spec")
	require.NoError(t, os.WriteFile(specPath, []byte(spec), 0o644))
	b, err := exec.Command("rpmbuild", "--define", "_topdir "+top, "-bb", specPath).CombinedOutput()
	require.NoError(t, err, "%s", b)
	return filepath.Join(top, "RPMS/noarch", name+"-"+version+"-1.noarch.rpm")
}

func TestRPMRoundTrip(t *testing.T) {
	for _, tool := range []string{"rpm", "rpmbuild"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: the rpm installer's real round trip needs it (on Debian: apt-get install rpm)", tool)
		}
	}
	ctx := context.Background()
	root, src := t.TempDir(), t.TempDir()
	r := &RPM{Root: root, Run: ExecRunner{}}
	v1 := Package{Name: "kok-test-tool", Version: "1.0.0"}
	v2 := Package{Name: "kok-test-tool", Version: "1.1.0"}
	rpm1, rpm2 := buildRPM(t, src, v1.Name, v1.Version), buildRPM(t, src, v2.Name, v2.Version)
	bin := filepath.Join(root, "usr/bin/kok-test-tool")

	require.NoError(t, r.Install(ctx, v1, rpm1, nil))
	ok, err := r.Installed(ctx, v1)
	require.NoError(t, err)
	require.True(t, ok)
	requireContent(t, bin, "echo 1.0.0")
	require.NoError(t, r.Install(ctx, v2, rpm2, nil), "upgrade")
	requireContent(t, bin, "echo 1.1.0")
	require.NoError(t, r.Install(ctx, v1, rpm1, nil), "downgrade")
	requireContent(t, bin, "echo 1.0.0")
	require.NoError(t, r.Remove(ctx, v1.Name))
	require.NoFileExists(t, bin)
	require.NoError(t, r.Remove(ctx, v1.Name))
}

func requireContent(t *testing.T, path, substr string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), substr)
}
