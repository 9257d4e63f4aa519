package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"kok.dev/contract/hostapi"

	"github.com/stretchr/testify/require"

	"kok.dev/internal/agent/installer"
	"kok.dev/internal/agent/supervisor"
)

// childEnv makes the test binary act as an agent that applies one package (the JSON spec in the
// variable's value) with a long settle time, so a test can kill it in the middle of the install.
const childEnv = "KOK_HOST_TEST_AGENT_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		var p struct {
			Root string
			Spec hostapi.PackageSpec
		}
		if err := json.Unmarshal([]byte(spec), &p); err != nil {
			panic(err)
		}
		sup := supervisor.New(supervisor.Options{RunDir: filepath.Join(p.Root, RunDir), DieWithAgent: true})
		a := &Activities{Host: "w1", Root: p.Root, Simulate: true, Services: sup, SettleTime: time.Hour}
		_, err := a.EnsurePackage(context.Background(), hostapi.EnsurePackageParams{Spec: p.Spec})
		fmt.Println("ensure returned:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// crashMidUpgrade installs v1, then has an agent in another process start the upgrade to v2
// and kills it while the new service settles: after download, unpack, configs and symlink,
// before the state records the new version.
func crashMidUpgrade(t *testing.T) (root string, v1, v2 hostapi.PackageSpec, oldPID int) {
	root, src := t.TempDir(), t.TempDir()
	v1, v2 = demoSpec(t, src, "1.0.0", demoScript("1.0.0")), demoSpec(t, src, "2.0.0", demoScript("2.0.0"))
	h := newHost(t, root)
	h.mustEnsure(v1)
	oldPID = h.sup.Status("demo").PID
	// The first agent goes away the way a stopped host does: its services with it.
	h.sup.StopAll()

	payload, err := json.Marshal(map[string]any{"Root": root, "Spec": v2})
	require.NoError(t, err)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"="+string(payload))
	out, err := os.Create(filepath.Join(t.TempDir(), "child.out"))
	require.NoError(t, err)
	child.Stdout, child.Stderr = out, out
	require.NoError(t, child.Start())
	var newPID int
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(root, "var/log/kok/demo.log"))
		newPID = readPID(root)
		return strings.Contains(string(b), "demo 2.0.0 starting") && newPID != 0
	}, 20*time.Second, 10*time.Millisecond, "the child never started the new version")
	require.NoError(t, child.Process.Kill())
	_ = child.Wait()
	require.Eventually(t, func() bool { return !alive(newPID) }, 10*time.Second, 10*time.Millisecond, "the service died with its agent")

	s := h.state()
	require.Equal(t, "1.0.0", s.Packages["demo"].Spec.Version, "the change was not recorded as done")
	require.Equal(t, "2.0.0", s.Pending["demo"].Spec.Version, "but it was recorded as under way")
	return root, v1, v2, oldPID
}

func TestAgentKilledMidUpgradeFinishesWithoutRedoing(t *testing.T) {
	root, _, v2, oldPID := crashMidUpgrade(t)

	// A third agent on the same root: it boots what the state says is installed...
	h3 := newHost(t, root)
	require.NoError(t, StartInstalledServices(context.Background(), h3.a))
	st := h3.sup.Status("demo")
	require.True(t, st.Running)
	require.NotEqual(t, oldPID, st.PID)
	require.Contains(t, cmdline(t, st.PID), "/demo/1.0.0/bin/svc")

	// ...and the workflow's retry finishes the upgrade without downloading or unpacking again.
	res := h3.mustEnsure(v2)
	require.Equal(t, hostapi.EnsureUpgraded, res.Action)
	require.Equal(t, "1.0.0", res.PreviousVersion)
	require.Contains(t, cmdline(t, h3.sup.Status("demo").PID), "/demo/2.0.0/bin/svc")
	require.Empty(t, h3.state().Pending)
	for step, want := range map[string]int{"downloaded": 2, "unpacked": 2, "installed": 1, "upgraded": 1} {
		require.Len(t, h3.journal(step), want, "journal entries %q (one per version)", step)
	}
	require.Equal(t, hostapi.EnsureNone, h3.mustEnsure(v2).Action)
}

func TestAgentKilledMidUpgradeThenKeptAtOldVersion(t *testing.T) {
	root, v1, _, _ := crashMidUpgrade(t)
	h := newHost(t, root)
	require.NoError(t, StartInstalledServices(context.Background(), h.a))

	// The workflow changed its mind (the spec went back to 1.0.0): the half-done upgrade goes.
	res := h.mustEnsure(v1)
	require.Equal(t, hostapi.EnsureRepaired, res.Action)
	require.Contains(t, res.Repairs[0], "reinstalled demo 1.0.0")
	link, err := os.Readlink(filepath.Join(root, "opt/kok/packages/demo/current"))
	require.NoError(t, err)
	require.Equal(t, "1.0.0", link)
	requireFile(t, filepath.Join(root, "etc/demo/demo.conf"), "version = 1.0.0\n", 0o644)
	require.Empty(t, h.state().Pending)
	require.Len(t, h.journal("abandoned"), 1)
	require.Contains(t, cmdline(t, h.sup.Status("demo").PID), "/demo/1.0.0/bin/svc")
	require.Equal(t, hostapi.EnsureNone, h.mustEnsure(v1).Action)
}

// readPID reads the supervisor's pid file of the demo service (0 when there is none yet).
func readPID(root string) int {
	b, err := os.ReadFile(filepath.Join(root, RunDir, "demo.pid"))
	if err != nil {
		return 0
	}
	var pid int
	_, _ = fmt.Sscan(string(b), &pid)
	return pid
}

func TestRemoveCleansUpAnInterruptedFirstInstall(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	spec := normalize(demoSpec(t, src, "1.0.0", demoScript("1.0.0")))
	// What a kill during a first install leaves: the intent recorded, files and configs on disk.
	st, err := h.a.loadState()
	require.NoError(t, err)
	st.Pending["demo"] = newRecord(spec, &spec)
	require.NoError(t, h.a.saveState(st))
	art, err := h.a.artifactFor(context.Background(), spec)
	require.NoError(t, err)
	require.NoError(t, (&installer.Local{Root: root}).Install(context.Background(), pkgOf(spec), art, nil))
	_, err = h.a.ensureConfigs(spec.ConfigFiles)
	require.NoError(t, err)

	res := h.remove("demo")
	require.True(t, res.Changed)
	require.Empty(t, res.Version, "it was never installed")
	require.NoDirExists(t, filepath.Join(root, "opt/kok/packages/demo"))
	require.NoFileExists(t, filepath.Join(root, "etc/demo/demo.conf"))
	require.Empty(t, h.state().Pending)
}

func TestRebootSimulatedHost(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	h.mustEnsure(demoSpec(t, src, "1.0.0", demoScript("1.0.0")))
	before := h.facts()
	pid := h.sup.Status("demo").PID

	_, err := h.env.ExecuteActivity(h.a.Reboot)
	require.NoError(t, err)
	require.False(t, alive(pid))
	st := h.sup.Status("demo")
	require.True(t, st.Running)
	require.NotEqual(t, pid, st.PID)
	after := h.facts()
	require.NotEqual(t, before.BootID, after.BootID)
	require.Equal(t, "simulated-boot-1", after.BootID)
	require.Len(t, h.journal("reboot"), 1)
}

type recordingRunner struct{ calls []string }

func (r *recordingRunner) Run(_ context.Context, _ []string, name string, args ...string) ([]byte, error) {
	r.calls = append(r.calls, strings.Join(append([]string{name}, args...), " "))
	return nil, nil
}

func TestRebootRealHostAsksSystemd(t *testing.T) {
	r := &recordingRunner{}
	// A real host rooted in a temporary directory, with a runner that only records: the test
	// must never reboot the machine.
	h := newHost(t, t.TempDir())
	h.a.Simulate, h.a.Runner = false, r
	_, err := h.env.ExecuteActivity(h.a.Reboot)
	require.NoError(t, err)
	require.Equal(t, []string{"systemctl reboot"}, r.calls)
}

func TestDebPackageThroughTheActivity(t *testing.T) {
	for _, tool := range []string{"dpkg-deb", "dpkg", "dpkg-query"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: this test installs a real .deb (apt-get install dpkg)", tool)
		}
	}
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	pkg := filepath.Join(src, "pkg")
	require.NoError(t, os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(pkg, "usr/bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "DEBIAN/control"), []byte("Package: kok-demo\nVersion: 1.0.0-1\nArchitecture: all\nMaintainer: kok tests <kok@example.invalid>\nDescription: demo\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pkg, "usr/bin/kok-demo"), []byte(demoScript("1.0.0")), 0o755))
	deb := filepath.Join(src, "kok-demo.deb")
	b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", pkg, deb).CombinedOutput()
	require.NoError(t, err, "%s", b)
	data, err := os.ReadFile(deb)
	require.NoError(t, err)
	spec := hostapi.PackageSpec{
		Name: "kok-demo", Version: "1.0.0", Installer: "deb", ArtifactURL: "file://" + deb, SHA256: sha256hex(data),
		Service: &hostapi.ServiceSpec{Command: []string{"${KOK_ROOT}/usr/bin/kok-demo"}},
	}
	require.Equal(t, hostapi.EnsureInstalled, h.mustEnsure(spec).Action)
	require.FileExists(t, filepath.Join(root, "usr/bin/kok-demo"))
	require.True(t, h.sup.Status("kok-demo").Running)
	require.Equal(t, hostapi.EnsureNone, h.mustEnsure(spec).Action)

	// Someone purges it behind the agent's back: the drift check puts it back.
	b, err = exec.Command("dpkg", "--root="+root, "--admindir="+root+"/var/lib/dpkg", "--log="+root+"/var/log/dpkg.log", "--purge", "kok-demo").CombinedOutput()
	require.NoError(t, err, "%s", b)
	res := h.mustEnsure(spec)
	require.Equal(t, hostapi.EnsureRepaired, res.Action)
	require.Contains(t, res.Repairs, "reinstalled kok-demo 1.0.0 (its files were missing or replaced)")
	require.FileExists(t, filepath.Join(root, "usr/bin/kok-demo"))

	require.True(t, h.remove("kok-demo").Changed)
	require.NoFileExists(t, filepath.Join(root, "usr/bin/kok-demo"))
	require.False(t, h.sup.Status("kok-demo").Known)
}

func TestRemovePurgesDataDirectoriesAndRefusesOthers(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	h.mustEnsure(demoSpec(t, src, "1.0.0", demoScript("1.0.0")))
	data := filepath.Join(root, "var/lib/kok/clusters/c1/etcd/member")
	require.NoError(t, os.MkdirAll(data, 0o755))

	val, err := h.env.ExecuteActivity(h.a.RemovePackage, hostapi.RemovePackageParams{Name: "demo", Purge: []string{"/var/lib/kok/clusters/c1", "/var/lib/kok/clusters/absent"}})
	require.NoError(t, err)
	var res hostapi.RemovePackageResult
	require.NoError(t, val.Get(&res))
	require.True(t, res.Changed)
	require.NoDirExists(t, filepath.Join(root, "var/lib/kok/clusters/c1"))
	require.DirExists(t, filepath.Join(root, "var/lib/kok"), "only the named tree goes")

	for _, bad := range []string{"/var/lib/kok/", "/var/lib/kok", "/etc", "var/lib/kok/x", "/var/lib/kok/../../etc", "/home/x"} {
		_, err := h.env.ExecuteActivity(h.a.RemovePackage, hostapi.RemovePackageParams{Name: "demo", Purge: []string{bad}})
		require.ErrorContains(t, err, "purge path", bad)
	}
}
