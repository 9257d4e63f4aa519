package host

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"kok.dev/contract/hostapi"
)

func TestInstallUpgradeDowngradeRemove(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	v1, v2 := demoSpec(t, src, "1.0.0", demoScript("1.0.0")), demoSpec(t, src, "2.0.0", demoScript("2.0.0"))

	// Install.
	res := h.mustEnsure(v1)
	require.Equal(t, hostapi.EnsureInstalled, res.Action)
	dir1 := filepath.Join(root, "opt/kok/packages/demo/1.0.0")
	require.FileExists(t, filepath.Join(dir1, "bin/svc"))
	link, err := os.Readlink(filepath.Join(root, "opt/kok/packages/demo/current"))
	require.NoError(t, err)
	require.Equal(t, "1.0.0", link)
	requireFile(t, filepath.Join(root, "etc/demo/demo.conf"), "version = 1.0.0\n", 0o644)
	requireFile(t, filepath.Join(root, "etc/sysctl.d/kok-demo.conf"), "# Written by kok-agent for package demo; edits are reverted.\nnet.ipv4.ip_forward = 1\n", 0o644)
	st := h.sup.Status("demo")
	require.True(t, st.Running)
	require.Equal(t, filepath.Join(dir1, "bin/svc")+" --config "+root+"/etc/demo/demo.conf --host w1", strings.TrimPrefix(cmdline(t, st.PID), "/bin/sh "))
	environ, err := os.ReadFile(filepath.Join("/proc", itoa(st.PID), "environ"))
	require.NoError(t, err)
	require.Contains(t, string(environ), "DEMO_DIR="+dir1+"\x00")
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(root, "var/log/kok/demo.log"))
		return strings.Contains(string(b), "demo 1.0.0 starting with --config")
	}, 10*time.Second, 10*time.Millisecond, "the service writes to its log under the root")
	require.NoFileExists(t, filepath.Join(root, CacheDir, v1.SHA256), "the cached artifact goes once installed")

	facts := h.facts()
	require.Equal(t, []hostapi.InstalledPackage{{Name: "demo", Version: "1.0.0", DependsOn: []string{"base"}, ServiceRunning: true}}, facts.Installed)

	// Again: nothing to do, nothing restarted.
	res = h.mustEnsure(v1)
	require.Equal(t, hostapi.EnsureNone, res.Action)
	require.Empty(t, res.Repairs)
	require.Equal(t, st.PID, h.sup.Status("demo").PID)

	// Upgrade.
	res = h.mustEnsure(v2)
	require.Equal(t, hostapi.EnsureUpgraded, res.Action)
	require.Equal(t, "1.0.0", res.PreviousVersion)
	st2 := h.sup.Status("demo")
	require.False(t, alive(st.PID))
	require.Contains(t, cmdline(t, st2.PID), "/demo/2.0.0/bin/svc")
	requireFile(t, filepath.Join(root, "etc/demo/demo.conf"), "version = 2.0.0\n", 0o644)
	require.DirExists(t, dir1, "the previous version stays for a quick rollback")

	// Downgrade: the previous version is still unpacked, so its artifact is not even needed.
	require.NoError(t, os.Remove(strings.TrimPrefix(v1.ArtifactURL, "file://")))
	res = h.mustEnsure(v1)
	require.Equal(t, hostapi.EnsureUpgraded, res.Action)
	require.Equal(t, "2.0.0", res.PreviousVersion)
	require.Contains(t, cmdline(t, h.sup.Status("demo").PID), "/demo/1.0.0/bin/svc")
	require.Equal(t, "1.0.0", h.state().Packages["demo"].Spec.Version)

	// Remove, twice.
	pid := h.sup.Status("demo").PID
	rm := h.remove("demo")
	require.Equal(t, hostapi.RemovePackageResult{Changed: true, Version: "1.0.0"}, rm)
	require.False(t, alive(pid))
	require.False(t, h.sup.Status("demo").Known)
	require.NoDirExists(t, filepath.Join(root, "opt/kok/packages/demo"))
	require.NoFileExists(t, filepath.Join(root, "etc/demo/demo.conf"))
	require.NoFileExists(t, filepath.Join(root, "etc/sysctl.d/kok-demo.conf"))
	require.Empty(t, h.state().Packages)
	require.Equal(t, hostapi.RemovePackageResult{}, h.remove("demo"))

	steps := []string{}
	for _, e := range h.journal("") {
		steps = append(steps, e.Step+" "+e.Version)
	}
	require.Equal(t, []string{
		"downloaded 1.0.0", "unpacked 1.0.0", "installed 1.0.0",
		"downloaded 2.0.0", "unpacked 2.0.0", "upgraded 2.0.0",
		"unpacked 1.0.0", "upgraded 1.0.0",
		"removed 1.0.0",
	}, steps)
}

func TestFailedUpgradeKeepsOldVersionRunning(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	v1 := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	bad := demoSpec(t, src, "2.0.0", crashScript)
	h.mustEnsure(v1)
	before := h.sup.Status("demo").PID

	_, err := h.ensure(bad)
	typ, msg := appErrType(t, err)
	require.Equal(t, hostapi.ErrTypeInstallFailed, typ)
	require.Contains(t, msg, "change demo from 1.0.0 to 2.0.0")
	require.Contains(t, msg, "exit status 3")
	require.Contains(t, msg, "address already in use", "the service's own words say why")
	require.Contains(t, msg, "rolled back: demo 1.0.0 is installed and its service demo runs again")

	st := h.sup.Status("demo")
	require.True(t, st.Running)
	require.NotEqual(t, before, st.PID, "the old version was restarted")
	require.Contains(t, cmdline(t, st.PID), "/demo/1.0.0/bin/svc")
	link, err := os.Readlink(filepath.Join(root, "opt/kok/packages/demo/current"))
	require.NoError(t, err)
	require.Equal(t, "1.0.0", link)
	requireFile(t, filepath.Join(root, "etc/demo/demo.conf"), "version = 1.0.0\n", 0o644)
	s := h.state()
	require.Equal(t, "1.0.0", s.Packages["demo"].Spec.Version)
	require.Empty(t, s.Pending)
	require.Len(t, h.journal("rolled-back"), 1)

	// The old version is what Ensure finds now: nothing to repair.
	require.Equal(t, hostapi.EnsureNone, h.mustEnsure(v1).Action)
}

func TestFailedFirstInstallLeavesNothing(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	_, err := h.ensure(demoSpec(t, src, "1.0.0", crashScript))
	typ, msg := appErrType(t, err)
	require.Equal(t, hostapi.ErrTypeInstallFailed, typ)
	require.Contains(t, msg, "nothing of demo 1.0.0 is left on the host")
	require.False(t, h.sup.Status("demo").Known)
	require.NoDirExists(t, filepath.Join(root, "opt/kok/packages/demo"))
	require.NoFileExists(t, filepath.Join(root, "etc/demo/demo.conf"))
	require.Empty(t, h.state().Packages)
	require.Empty(t, h.state().Pending)
}

func TestChecksumMismatchChangesNothing(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	v1 := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	h.mustEnsure(v1)
	pid := h.sup.Status("demo").PID
	stateBefore, err := os.ReadFile(filepath.Join(root, StateFile))
	require.NoError(t, err)

	v2 := demoSpec(t, src, "2.0.0", demoScript("2.0.0"))
	actual := v2.SHA256
	v2.SHA256 = strings.Repeat("ab", 32)
	_, err = h.ensure(v2)
	typ, msg := appErrType(t, err)
	require.Equal(t, hostapi.ErrTypeChecksumMismatch, typ)
	for _, want := range []string{"package demo 2.0.0", "has sha256 " + actual, "expected " + v2.SHA256, "nothing on the host was changed"} {
		require.Contains(t, msg, want)
	}

	require.Equal(t, pid, h.sup.Status("demo").PID, "the running service was not touched")
	require.NoDirExists(t, filepath.Join(root, "opt/kok/packages/demo/2.0.0"))
	requireFile(t, filepath.Join(root, "etc/demo/demo.conf"), "version = 1.0.0\n", 0o644)
	stateAfter, err := os.ReadFile(filepath.Join(root, StateFile))
	require.NoError(t, err)
	require.Equal(t, string(stateBefore), string(stateAfter))
	entries, err := os.ReadDir(filepath.Join(root, CacheDir))
	require.NoError(t, err)
	require.Empty(t, entries, "the refused download is not kept")

	// A first install with a bad digest leaves no trace either.
	root2 := t.TempDir()
	h2 := newHost(t, root2)
	_, err = h2.ensure(v2)
	typ, _ = appErrType(t, err)
	require.Equal(t, hostapi.ErrTypeChecksumMismatch, typ)
	require.NoDirExists(t, filepath.Join(root2, "opt"))
	require.NoDirExists(t, filepath.Join(root2, "etc"))
}

func TestDriftRepairs(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	// Restarts are slow here so that a killed service is still down when the drift check runs.
	h := newHost(t, root, slowRestarts)
	v1 := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	h.mustEnsure(v1)

	t.Run("killed service", func(t *testing.T) {
		pid := h.sup.Status("demo").PID
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		require.Eventually(t, func() bool { return !h.sup.Status("demo").Running }, 10*time.Second, 10*time.Millisecond)
		res := h.mustEnsure(v1)
		require.Equal(t, hostapi.EnsureRepaired, res.Action)
		require.Equal(t, []string{"restarted stopped service demo (last exit: signal: killed)"}, res.Repairs)
		require.True(t, h.sup.Status("demo").Running)
	})
	t.Run("stopped service", func(t *testing.T) {
		require.NoError(t, h.sup.Stop("demo"))
		res := h.mustEnsure(v1)
		require.Equal(t, []string{"started service demo (it was not running)"}, res.Repairs)
	})
	t.Run("edited config", func(t *testing.T) {
		pid := h.sup.Status("demo").PID
		require.NoError(t, os.WriteFile(filepath.Join(root, "etc/demo/demo.conf"), []byte("version = hacked\n"), 0o644))
		res := h.mustEnsure(v1)
		require.Equal(t, hostapi.EnsureRepaired, res.Action)
		require.Equal(t, []string{
			"rewrote /etc/demo/demo.conf (content differed)",
			"restarted service demo to load the repaired files",
		}, res.Repairs)
		requireFile(t, filepath.Join(root, "etc/demo/demo.conf"), "version = 1.0.0\n", 0o644)
		require.NotEqual(t, pid, h.sup.Status("demo").PID)
	})
	t.Run("config mode", func(t *testing.T) {
		require.NoError(t, os.Chmod(filepath.Join(root, "etc/demo/demo.conf"), 0o600))
		res := h.mustEnsure(v1)
		require.Equal(t, "rewrote /etc/demo/demo.conf (mode 0600, want 0644)", res.Repairs[0])
		requireFile(t, filepath.Join(root, "etc/demo/demo.conf"), "version = 1.0.0\n", 0o644)
	})
	t.Run("deleted config and sysctls", func(t *testing.T) {
		require.NoError(t, os.Remove(filepath.Join(root, "etc/demo/demo.conf")))
		require.NoError(t, os.WriteFile(filepath.Join(root, "etc/sysctl.d/kok-demo.conf"), []byte("net.ipv4.ip_forward = 0\n"), 0o644))
		res := h.mustEnsure(v1)
		require.Equal(t, []string{
			"rewrote /etc/demo/demo.conf (missing)",
			"rewrote /etc/sysctl.d/kok-demo.conf (content differed)",
			"restarted service demo to load the repaired files",
		}, res.Repairs)
	})
	t.Run("removed package files", func(t *testing.T) {
		require.NoError(t, os.RemoveAll(filepath.Join(root, "opt/kok/packages/demo")))
		res := h.mustEnsure(v1)
		require.Equal(t, hostapi.EnsureRepaired, res.Action)
		require.Equal(t, []string{
			"reinstalled demo 1.0.0 (its files were missing or replaced)",
			"restarted service demo to load the repaired files",
		}, res.Repairs)
		require.FileExists(t, filepath.Join(root, "opt/kok/packages/demo/1.0.0/bin/svc"))
		require.Contains(t, cmdline(t, h.sup.Status("demo").PID), "/demo/1.0.0/bin/svc")
	})
	t.Run("nothing left to repair", func(t *testing.T) {
		res := h.mustEnsure(v1)
		require.Equal(t, hostapi.EnsureNone, res.Action)
		require.Empty(t, res.Repairs)
	})
}

func TestRepairReportsRestartsTheSupervisorMade(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root) // quick restarts
	v1 := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	h.mustEnsure(v1)
	pid := h.sup.Status("demo").PID
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	require.Eventually(t, func() bool { st := h.sup.Status("demo"); return st.Running && st.PID != pid }, 10*time.Second, 10*time.Millisecond)

	res := h.mustEnsure(v1)
	require.Equal(t, hostapi.EnsureRepaired, res.Action)
	require.Equal(t, []string{"service demo had stopped (last exit: signal: killed); the agent's supervisor restarted it (1 time(s))"}, res.Repairs)
	require.Equal(t, hostapi.EnsureNone, h.mustEnsure(v1).Action, "a restart is reported once")
}

func TestBadSpecIsRefused(t *testing.T) {
	h := newHost(t, t.TempDir())
	spec := hostapi.PackageSpec{
		Name: "Bad_Name", Version: "1.0", Installer: "zip", ArtifactURL: "ftp://x/y", SHA256: "abc",
		ConfigFiles: []hostapi.ConfigFile{{Path: "etc/relative"}, {Path: "/etc/../passwd"}},
		Sysctls:     map[string]string{"not a key": "1"},
		Service:     &hostapi.ServiceSpec{Name: "svc", RestartPolicy: "Sometimes"},
		HealthCheck: &hostapi.ProbeSpec{HTTPURL: "http://x", TCPAddress: "a:1"},
	}
	_, err := h.ensure(spec)
	typ, msg := appErrType(t, err)
	require.Equal(t, hostapi.ErrTypeBadSpec, typ)
	for _, want := range []string{
		`package name "Bad_Name"`, `installer "zip"`, `artifact URL "ftp://x/y"`, `sha256 "abc"`,
		`path "etc/relative" must be absolute`, `path "/etc/../passwd" must be clean`, `sysctl "not a key"`,
		"service svc has no command", `restart policy "Sometimes"`, "exactly one of exec, http or tcp",
	} {
		require.Contains(t, msg, want)
	}
}

func TestSystemSettingPackage(t *testing.T) {
	root := t.TempDir()
	h := newHost(t, root)
	spec := hostapi.PackageSpec{Name: "tuning", Version: "1", Type: hostapi.TypeSystemSetting, Sysctls: map[string]string{"vm.max_map_count": "262144", "fs.inotify.max_user_watches": "524288"}}
	require.Equal(t, hostapi.EnsureInstalled, h.mustEnsure(spec).Action)
	requireFile(t, filepath.Join(root, "etc/sysctl.d/kok-tuning.conf"),
		"# Written by kok-agent for package tuning; edits are reverted.\nfs.inotify.max_user_watches = 524288\nvm.max_map_count = 262144\n", 0o644)
	res, err := h.health("tuning", false)
	require.NoError(t, err)
	require.True(t, res.Healthy)
	require.Equal(t, hostapi.EnsureNone, h.mustEnsure(spec).Action)
	require.True(t, h.remove("tuning").Changed)
	require.NoFileExists(t, filepath.Join(root, "etc/sysctl.d/kok-tuning.conf"))
}

func requireFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, content, string(b))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, mode, fi.Mode().Perm(), "mode of %s", path)
}
