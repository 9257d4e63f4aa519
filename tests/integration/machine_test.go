package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kok.dev/contract/hostapi"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/host"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/dev/simnode/catalogue"
	"kok.dev/internal/agent/state"
	"kok.dev/tests/harness"
)

// TestMachineFinalState drives one node through its life as a user would, with a real
// kok-manager, a real kok-agent on a simulated host and real (simulated) packages: install in
// dependency order, readiness gates from two reporters, upgrade, a refused checksum, drift
// repaired, removal, an agent and a manager killed mid-change, and deletion.
func TestMachineFinalState(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	env := harness.Start(t, harness.Options{Manager: true, Agents: []string{"n1"}})
	ctx := context.Background()
	c := env.Client
	root := env.HostRoot("n1")
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kokv1.ConditionNamespace}}))

	mpvs, err := catalogue.Build(filepath.Join(env.Dir, "packages"), "")
	require.NoError(t, err)
	byName := map[string]kokv1.MachinePackageVersion{}
	for i := range mpvs {
		byName[mpvs[i].Name] = mpvs[i]
		require.NoError(t, c.Create(ctx, &mpvs[i]))
	}
	// A release whose artifact does not match its checksum: must be refused, changing nothing.
	good := byName["log-collector-1.1.0"]
	bad := good.DeepCopy()
	bad.ObjectMeta = metav1.ObjectMeta{Name: "log-collector-1.2.0"}
	bad.Spec.Version = "1.2.0"
	bad.Spec.Artifact.SHA256 = strings.Repeat("0", 64)
	require.NoError(t, c.Create(ctx, bad))

	m := &kokv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: "n1"},
		Spec: kokv1.MachineSpec{
			Packages: []kokv1.PackageRef{
				{Name: "log-collector", Version: "1.0.0"},
				{Name: "kubelet", Version: "1.37.2"},
				{Name: "container-runtime", Version: "1.7.0"},
			},
			ReadinessGates:     []kokv1.ReadinessGate{{ConditionType: "NetworkReady"}, {ConditionType: "LogsShipping"}},
			DriftCheckInterval: &metav1.Duration{Duration: 10 * time.Second},
		},
	}
	start := time.Now()
	require.NoError(t, c.Create(ctx, m))

	w := &machineWatch{t: t, c: c, name: "n1", root: root}

	t.Run("installs three components in dependency order", func(t *testing.T) {
		w.converged(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2", "log-collector": "1.0.0"})
		t.Logf("three packages installed and healthy %s after the Machine was created", time.Since(start).Round(time.Millisecond))
		require.Equal(t, []string{"container-runtime", "kubelet", "log-collector"}, w.journalOrder("installed"))
		got := w.get()
		require.Equal(t, "container-runtime=1.7.0,kubelet=1.37.2,log-collector=1.0.0", got.Status.Versions)
		require.NotNil(t, got.Status.Workflow)
		require.Equal(t, "Machine/local/n1", got.Status.Workflow.ID)
		require.Contains(t, got.Status.Workflow.URL, "/workflows/Machine%2Flocal%2Fn1")
		require.Contains(t, got.Finalizers, kokv1.MachineFinalizer)
	})

	t.Run("unschedulable until both reporters say True, and again when one turns False", func(t *testing.T) {
		w.schedulable(false, "readiness gate LogsShipping: no condition reported")
		w.report("net", "NetworkReady", "True")
		w.schedulable(false, "readiness gate LogsShipping: no condition reported")
		w.report("logs", "LogsShipping", "True")
		w.schedulable(true, "")
		w.report("logs", "LogsShipping", "False")
		w.schedulable(false, "readiness gate LogsShipping is False")
		w.report("logs", "LogsShipping", "True")
		w.schedulable(true, "")
	})

	t.Run("upgrades one component", func(t *testing.T) {
		w.setPackage("log-collector", "1.1.0")
		w.converged(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2", "log-collector": "1.1.0"})
		require.Equal(t, 1, w.journalCount("log-collector", "1.1.0", "upgraded"))
	})

	t.Run("a missing package version is named, nothing changes, and it converges once published", func(t *testing.T) {
		before := len(w.journal())
		w.setPackage("log-collector", "9.9.9")
		w.eventually(func(m *kokv1.Machine) error {
			c := meta.FindStatusCondition(m.Status.Conditions, kokv1.MachineConditionPackagesInSync)
			if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "MachinePackageVersion log-collector-9.9.9 does not exist") {
				return fmt.Errorf("PackagesInSync: %+v", c)
			}
			return nil
		})
		require.Equal(t, kokv1.MachineBlocked, w.get().Status.Phase)
		require.Len(t, w.journal(), before, "nothing on the host was touched")
		require.Equal(t, "1.1.0", w.installedVersion("log-collector"))

		late := good.DeepCopy()
		late.ObjectMeta = metav1.ObjectMeta{Name: "log-collector-9.9.9"}
		late.Spec.Version = "9.9.9"
		require.NoError(t, c.Create(ctx, late))
		w.converged(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2", "log-collector": "9.9.9"})
		w.setPackage("log-collector", "1.1.0")
		w.converged(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2", "log-collector": "1.1.0"})
	})

	t.Run("a bad checksum is refused with a clear condition and the old version keeps running", func(t *testing.T) {
		w.setPackage("log-collector", "1.2.0")
		w.eventually(func(m *kokv1.Machine) error {
			c := meta.FindStatusCondition(m.Status.Conditions, kokv1.MachineConditionPackagesInSync)
			if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "log-collector 1.2.0") || !strings.Contains(strings.ToLower(c.Message), "sha256") {
				return fmt.Errorf("PackagesInSync: %+v", c)
			}
			return nil
		})
		require.Equal(t, "1.1.0", w.installedVersion("log-collector"))
		w.serviceRunning("log-collector")
		require.Zero(t, w.journalCount("log-collector", "1.2.0", "installed")+w.journalCount("log-collector", "1.2.0", "upgraded"))
		w.schedulable(true, "") // the old version serves: a bad release does not cordon the node
		w.setPackage("log-collector", "1.1.0")
		w.converged(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2", "log-collector": "1.1.0"})
	})

	t.Run("drift is repaired and recorded: a killed service, an edited config", func(t *testing.T) {
		pid := w.servicePID("log-collector")
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		cfg := filepath.Join(root, "etc/kok-sim/log-collector.yaml")
		want, err := os.ReadFile(cfg)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(cfg, []byte("edited: by hand\n"), 0o644))
		w.eventEventually(kokv1.ReasonDriftCorrected, "/etc/kok-sim/log-collector.yaml")
		harness.Eventually(t, time.Minute, func(context.Context) error {
			got, err := os.ReadFile(cfg)
			if err != nil || string(got) != string(want) {
				return fmt.Errorf("config not restored yet (%w)", err)
			}
			return nil
		})
		w.serviceRunning("log-collector")
		require.NotEqual(t, pid, w.servicePID("log-collector"))
	})

	t.Run("removes one component", func(t *testing.T) {
		w.setPackages(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2"})
		w.converged(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2"})
		require.Equal(t, 1, w.journalCount("log-collector", "1.1.0", "removed"))
		require.Empty(t, w.installedVersion("log-collector"))
	})

	t.Run("agent killed in the middle of an install converges with nothing installed twice", func(t *testing.T) {
		w.setPackages(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2", "log-collector": "1.0.0"})
		w.journalEventually("log-collector", "1.0.0", "downloaded")
		env.Agents["n1"].Kill()
		env.Agents["n1"].Start()
		w.converged(map[string]string{"container-runtime": "1.7.0", "kubelet": "1.37.2", "log-collector": "1.0.0"})
		require.Equal(t, 2, w.journalCount("log-collector", "1.0.0", "installed"), "installed once at the start, once now: never twice for one change")
	})

	t.Run("manager restarted in the middle of a change: the change completes once", func(t *testing.T) {
		w.setPackage("container-runtime", "1.7.1")
		w.eventually(func(m *kokv1.Machine) error {
			if c := meta.FindStatusCondition(m.Status.Conditions, kokv1.ConditionProgressing); c == nil || c.Status != metav1.ConditionTrue {
				return errors.New("not progressing yet")
			}
			return nil
		})
		env.Manager.Kill()
		env.Manager.Start()
		w.converged(map[string]string{"container-runtime": "1.7.1", "kubelet": "1.37.2", "log-collector": "1.0.0"})
		require.Equal(t, 1, w.journalCount("container-runtime", "1.7.1", "upgraded"))
		w.schedulable(true, "")
	})

	t.Run("deleting the Machine removes its components and its Node", func(t *testing.T) {
		require.NoError(t, c.Delete(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}))
		harness.Eventually(t, 2*time.Minute, func(ctx context.Context) error {
			var m kokv1.Machine
			if err := c.Get(ctx, client.ObjectKey{Name: "n1"}, &m); !apierrors.IsNotFound(err) {
				return fmt.Errorf("machine still there (phase %s)", m.Status.Phase)
			}
			var n corev1.Node
			if err := c.Get(ctx, client.ObjectKey{Name: "n1"}, &n); !apierrors.IsNotFound(err) {
				return errors.New("node still there")
			}
			return nil
		})
		for _, p := range []string{"container-runtime", "kubelet", "log-collector"} {
			require.Empty(t, w.installedVersion(p), p)
		}
	})
}

// machineWatch reads one Machine, its Node and its host, polling with deadlines.
type machineWatch struct {
	t    *testing.T
	c    client.Client
	name string
	root string
}

const converge = 2 * time.Minute

func (w *machineWatch) get() *kokv1.Machine {
	w.t.Helper()
	var m kokv1.Machine
	require.NoError(w.t, w.c.Get(context.Background(), client.ObjectKey{Name: w.name}, &m))
	return &m
}

func (w *machineWatch) eventually(check func(*kokv1.Machine) error) {
	w.t.Helper()
	harness.Eventually(w.t, converge, func(ctx context.Context) error {
		var m kokv1.Machine
		if err := w.c.Get(ctx, client.ObjectKey{Name: w.name}, &m); err != nil {
			return err
		}
		return check(&m)
	})
}

// converged waits until the Machine reports exactly these packages Running at these versions,
// observed at its current generation, and Ready.
func (w *machineWatch) converged(want map[string]string) {
	w.t.Helper()
	w.eventually(func(m *kokv1.Machine) error {
		if m.Status.ObservedGeneration != m.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", m.Status.ObservedGeneration, m.Generation)
		}
		got := map[string]string{}
		for _, c := range m.Status.Components {
			if c.Phase != kokv1.ComponentRunning {
				return fmt.Errorf("component %s is %s: %s", c.Name, c.Phase, c.Message)
			}
			got[c.Name] = c.Version
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("components %v, want %v", got, want)
		}
		if ready := meta.FindStatusCondition(m.Status.Conditions, kokv1.ConditionReady); ready == nil || ready.Status != metav1.ConditionTrue {
			return fmt.Errorf("not Ready: %+v (phase %s)", ready, m.Status.Phase)
		}
		return nil
	})
	for name, version := range want {
		require.Equal(w.t, version, w.installedVersion(name), "on the host: %s", name)
	}
}

// schedulable waits for the Node and the Machine's status to agree on schedulability; when not,
// the Schedulable condition's message must contain why.
func (w *machineWatch) schedulable(want bool, why string) {
	w.t.Helper()
	w.eventually(func(m *kokv1.Machine) error {
		var n corev1.Node
		if err := w.c.Get(context.Background(), client.ObjectKey{Name: w.name}, &n); err != nil {
			return err
		}
		if n.Spec.Unschedulable == want || m.Status.Schedulable != want {
			return fmt.Errorf("node unschedulable=%t, status.schedulable=%t, want schedulable=%t", n.Spec.Unschedulable, m.Status.Schedulable, want)
		}
		c := meta.FindStatusCondition(m.Status.Conditions, kokv1.MachineConditionSchedulable)
		if c == nil || (c.Status == metav1.ConditionTrue) != want || !strings.Contains(c.Message, why) {
			return fmt.Errorf("Schedulable condition %+v, want %t with %q", c, want, why)
		}
		return nil
	})
}

// report writes one reporter's Condition ConfigMap for the node.
func (w *machineWatch) report(reporter, typ, status string) {
	w.t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: kokv1.ConditionNamespace, Name: w.name + "-" + reporter}}
	ctx := context.Background()
	err := w.c.Get(ctx, client.ObjectKeyFromObject(cm), cm)
	cm.Labels = map[string]string{kokv1.LabelNode: w.name, kokv1.LabelReporter: reporter}
	cm.Data = map[string]string{typ: status}
	switch {
	case apierrors.IsNotFound(err):
		require.NoError(w.t, w.c.Create(ctx, cm))
	case err == nil:
		require.NoError(w.t, w.c.Update(ctx, cm))
	default:
		require.NoError(w.t, err)
	}
}

func (w *machineWatch) setPackage(name, version string) {
	w.t.Helper()
	m := w.get()
	want := map[string]string{}
	for _, p := range m.Spec.Packages {
		want[p.Name] = p.Version
	}
	want[name] = version
	w.setPackages(want)
}

func (w *machineWatch) setPackages(want map[string]string) {
	w.t.Helper()
	// The workflow writes status concurrently, and status shares the
	// object's resourceVersion: a spec edit must retry on conflict, exactly
	// as a human's kubectl edit would.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		m := w.get()
		m.Spec.Packages = nil
		for _, name := range []string{"container-runtime", "kubelet", "log-collector", "node-problem-detector"} {
			if v, ok := want[name]; ok {
				m.Spec.Packages = append(m.Spec.Packages, kokv1.PackageRef{Name: name, Version: v})
			}
		}
		return w.c.Update(context.Background(), m)
	})
	require.NoError(w.t, err)
}

// installedVersion is what the agent's state on the host says ("" = not installed).
func (w *machineWatch) installedVersion(pkg string) string {
	w.t.Helper()
	data, err := os.ReadFile(filepath.Join(w.root, host.StateFile))
	require.NoError(w.t, err)
	var st struct {
		Packages map[string]struct{ Spec hostapi.PackageSpec }
	}
	require.NoError(w.t, json.Unmarshal(data, &st))
	return st.Packages[pkg].Spec.Version
}

func (w *machineWatch) servicePID(svc string) int {
	w.t.Helper()
	var pid int
	harness.Eventually(w.t, converge, func(context.Context) error {
		data, err := os.ReadFile(filepath.Join(w.root, host.RunDir, svc+".pid"))
		if err != nil {
			return err
		}
		// "<pid> <start time>": the start time guards against a reused pid.
		fields := strings.Fields(string(data))
		if len(fields) == 0 {
			return errors.New("empty pid file")
		}
		pid, err = strconv.Atoi(fields[0])
		if err != nil {
			return err
		}
		return syscall.Kill(pid, 0)
	})
	return pid
}

func (w *machineWatch) serviceRunning(svc string) { w.t.Helper(); w.servicePID(svc) }

func (w *machineWatch) journal() []state.Entry {
	w.t.Helper()
	f, err := os.Open(filepath.Join(w.root, host.JournalFile))
	require.NoError(w.t, err)
	defer f.Close()
	var out []state.Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e state.Entry
		require.NoError(w.t, json.Unmarshal(sc.Bytes(), &e))
		out = append(out, e)
	}
	return out
}

func (w *machineWatch) journalCount(pkg, version, step string) int {
	n := 0
	for _, e := range w.journal() {
		if e.Package == pkg && e.Version == version && e.Step == step {
			n++
		}
	}
	return n
}

func (w *machineWatch) journalOrder(step string) []string {
	var out []string
	for _, e := range w.journal() {
		if e.Step == step {
			out = append(out, e.Package)
		}
	}
	return out
}

func (w *machineWatch) journalEventually(pkg, version, step string) {
	w.t.Helper()
	harness.Eventually(w.t, converge, func(context.Context) error {
		if w.journalCount(pkg, version, step) == 0 {
			return fmt.Errorf("no %s %s %s in the agent journal yet", step, pkg, version)
		}
		return nil
	})
}

// eventEventually waits for an Event on the Machine with this reason whose message contains text.
func (w *machineWatch) eventEventually(reason, text string) {
	w.t.Helper()
	harness.Eventually(w.t, converge, func(ctx context.Context) error {
		var evs corev1.EventList
		if err := w.c.List(ctx, &evs, client.InNamespace(kokv1.EventNamespace)); err != nil {
			return err
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "Machine" && e.InvolvedObject.Name == w.name && e.Reason == reason {
				if strings.Contains(e.Message, text) {
					return nil
				}
				seen = append(seen, e.Message)
			}
		}
		return fmt.Errorf("no %s event mentioning %q (seen %q)", reason, text, seen)
	})
}
