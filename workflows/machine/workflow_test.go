package machine

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"kok.dev/contract/hostapi"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/host"
	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
)

// fakeWorld stands in for the cluster and the host behind the mocked activities: the workflow
// under test sees a host whose packages really change when it installs or removes them.
type fakeWorld struct {
	mu        sync.Mutex
	desired   kube.MachineDesired
	installed map[string]hostapi.InstalledPackage
	calls     []string // host calls in order: "ensure kubelet v1", "remove x", ...
	failWith  map[string]error
	repairs   map[string][]string // next EnsurePackage of a package reports these repairs
	unhealthy map[string]string
	node      bool // the Node is registered
	sched     []bool
	reports   []kube.MachineReport
	events    []kube.MachineEventParams
	released  *kube.ReleaseMachineParams
}

func newWorld(pkgs ...hostapi.PackageSpec) *fakeWorld {
	return &fakeWorld{
		desired:   kube.MachineDesired{Found: true, Generation: 1, Host: "h1", DriftInterval: 5 * time.Minute, Packages: pkgs},
		installed: map[string]hostapi.InstalledPackage{},
		failWith:  map[string]error{},
		repairs:   map[string][]string{},
		unhealthy: map[string]string{},
		node:      true,
	}
}

func (w *fakeWorld) update(f func(*fakeWorld)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

func (w *fakeWorld) lastReport() kube.MachineReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reports[len(w.reports)-1]
}

func (w *fakeWorld) mock(env *testsuite.TestWorkflowEnvironment) {
	env.RegisterActivity(&kube.Activities{})
	env.RegisterActivity(&host.Activities{})
	env.OnActivity(kubeActs.ReadMachine, mock.Anything, mock.Anything).Return(w.ReadMachine)
	env.OnActivity(kubeActs.ReportMachineStatus, mock.Anything, mock.Anything).Return(w.ReportMachineStatus)
	env.OnActivity(kubeActs.RecordMachineEvent, mock.Anything, mock.Anything).Return(w.RecordMachineEvent)
	env.OnActivity(kubeActs.SetNodeSchedulable, mock.Anything, mock.Anything).Return(w.SetNodeSchedulable)
	env.OnActivity(kubeActs.ReleaseMachine, mock.Anything, mock.Anything).Return(w.ReleaseMachine)
	env.OnActivity(hostActs.Facts, mock.Anything).Return(w.Facts)
	env.OnActivity(hostActs.EnsurePackage, mock.Anything, mock.Anything).Return(w.EnsurePackage)
	env.OnActivity(hostActs.RemovePackage, mock.Anything, mock.Anything).Return(w.RemovePackage)
	env.OnActivity(hostActs.CheckHealth, mock.Anything, mock.Anything).Return(w.CheckHealth)
}

// The fake activities, with the real ones' names and signatures (the replay recorder registers
// them on a real worker).

func (w *fakeWorld) ReadMachine(context.Context, kube.ReadMachineParams) (kube.MachineDesired, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired, nil
}

func (w *fakeWorld) ReportMachineStatus(_ context.Context, r kube.MachineReport) error {
	w.update(func(w *fakeWorld) { w.reports = append(w.reports, r) })
	return nil
}

func (w *fakeWorld) RecordMachineEvent(_ context.Context, e kube.MachineEventParams) error {
	w.update(func(w *fakeWorld) { w.events = append(w.events, e) })
	return nil
}

func (w *fakeWorld) SetNodeSchedulable(_ context.Context, p kube.SetNodeSchedulableParams) (kube.SetNodeSchedulableResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.node {
		return kube.SetNodeSchedulableResult{}, temporal.NewNonRetryableApplicationError("node does not exist", kube.ErrTypeNodeNotFound, nil)
	}
	w.sched = append(w.sched, p.Schedulable)
	return kube.SetNodeSchedulableResult{Changed: true}, nil
}

func (w *fakeWorld) ReleaseMachine(_ context.Context, p kube.ReleaseMachineParams) error {
	w.update(func(w *fakeWorld) {
		w.released = &p
		w.desired = kube.MachineDesired{}
	})
	return nil
}

func (w *fakeWorld) Facts(context.Context) (hostapi.FactsResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	res := hostapi.FactsResult{Host: "h1", OS: "kokos"}
	for _, name := range sortedKeys(w.installed) {
		res.Installed = append(res.Installed, w.installed[name])
	}
	return res, nil
}

func (w *fakeWorld) EnsurePackage(_ context.Context, p hostapi.EnsurePackageParams) (hostapi.EnsurePackageResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := p.Spec
	w.calls = append(w.calls, "ensure "+s.Name+" "+s.Version)
	if err := w.failWith[s.Name+"@"+s.Version]; err != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	prev, had := w.installed[s.Name]
	w.installed[s.Name] = hostapi.InstalledPackage{Name: s.Name, Version: s.Version, DependsOn: s.DependsOn, ServiceRunning: true}
	switch {
	case !had:
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureInstalled}, nil
	case prev.Version != s.Version:
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureUpgraded, PreviousVersion: prev.Version}, nil
	case len(w.repairs[s.Name]) > 0:
		r := w.repairs[s.Name]
		delete(w.repairs, s.Name)
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureRepaired, Repairs: r}, nil
	}
	return hostapi.EnsurePackageResult{Action: hostapi.EnsureNone}, nil
}

func (w *fakeWorld) RemovePackage(_ context.Context, p hostapi.RemovePackageParams) (hostapi.RemovePackageResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, "remove "+p.Name)
	prev, had := w.installed[p.Name]
	delete(w.installed, p.Name)
	return hostapi.RemovePackageResult{Changed: had, Version: prev.Version}, nil
}

func (w *fakeWorld) CheckHealth(_ context.Context, p hostapi.CheckHealthParams) (hostapi.CheckHealthResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if msg, bad := w.unhealthy[p.Name]; bad {
		return hostapi.CheckHealthResult{Healthy: false, Message: msg}, nil
	}
	return hostapi.CheckHealthResult{Healthy: true}, nil
}

func (w *fakeWorld) hostCalls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// newEnv returns a test environment that logs only warnings, so failures are readable.
func newEnv() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	return s.NewTestWorkflowEnvironment()
}

func pkg(name, version string, deps ...string) hostapi.PackageSpec {
	return hostapi.PackageSpec{Name: name, Version: version, Installer: "local", DependsOn: deps}
}

func condOf(r kube.MachineReport, typ string) kube.ConditionReport {
	for _, c := range r.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return kube.ConditionReport{}
}

// run executes the workflow, calling each step at its offset (workflow time), and deleting the
// Machine (Found=false) at the end so the workflow finishes.
func run(t *testing.T, w *fakeWorld, steps ...func(env *testsuite.TestWorkflowEnvironment) time.Duration) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	env := newEnv()
	w.mock(env)
	at := time.Duration(0)
	for _, step := range steps {
		at += time.Minute
		env.RegisterDelayedCallback(func() {
			step(env)
			env.SignalWorkflow(SignalReconcile, nil)
		}, at)
	}
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Found = false })
		env.SignalWorkflow(SignalReconcile, nil)
	}, at+time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	return env
}

func TestInstallsInDependencyOrderAndMakesSchedulable(t *testing.T) {
	w := newWorld(pkg("log-collector", "2", "kubelet"), pkg("kubelet", "v1", "runtime"), pkg("runtime", "1"))
	run(t, w)
	calls := w.hostCalls()
	require.Equal(t, []string{"ensure runtime 1", "ensure kubelet v1", "ensure log-collector 2"}, calls[:3])
	require.Equal(t, []bool{true}, w.sched)
	r := w.lastReport()
	require.Equal(t, string(kokv1.MachineReady), r.Phase)
	require.True(t, r.Schedulable)
	require.Equal(t, "True", condOf(r, kokv1.MachineConditionPackagesInSync).Status)
	require.Len(t, r.Components, 3)
	for _, c := range r.Components {
		require.Equal(t, string(kokv1.ComponentRunning), c.Phase, c.Name)
	}
}

func TestUnresolvableSpecTouchesNothing(t *testing.T) {
	w := newWorld()
	w.desired.ResolveErrors = []string{"package kubelet version v9: MachinePackageVersion kubelet-v9 does not exist"}
	run(t, w)
	require.Empty(t, w.hostCalls())
	require.Empty(t, w.sched)
	r := w.lastReport()
	require.Equal(t, string(kokv1.MachineBlocked), r.Phase)
	c := condOf(r, kokv1.MachineConditionPackagesInSync)
	require.Equal(t, "False", c.Status)
	require.Contains(t, c.Message, "MachinePackageVersion kubelet-v9 does not exist")
}

func TestFailedUpgradeKeepsOldVersionAndIsNotRetriedUntilSpecChanges(t *testing.T) {
	w := newWorld(pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"))
	bad := temporal.NewNonRetryableApplicationError("sha256 mismatch for runtime 2: want aa, got bb", hostapi.ErrTypeChecksumMismatch, nil)
	run(t, w,
		func(*testsuite.TestWorkflowEnvironment) time.Duration { // upgrade runtime to a broken version
			w.update(func(w *fakeWorld) {
				w.failWith["runtime@2"] = bad
				w.desired.Generation = 2
				w.desired.Packages = []hostapi.PackageSpec{pkg("runtime", "2"), pkg("kubelet", "v2", "runtime")}
			})
			return 0
		},
		func(*testsuite.TestWorkflowEnvironment) time.Duration { return 0 }, // another wake-up: no retry
	)
	calls := w.hostCalls()
	require.Equal(t, 1, count(calls, "ensure runtime 2"), "a failed version is tried once per generation: %v", calls)
	require.Zero(t, count(calls, "ensure kubelet v2"), "dependents of a failed package are not touched: %v", calls)
	require.Equal(t, "1", w.installed["runtime"].Version, "the old version stays installed")
	r := w.lastReport()
	require.Equal(t, string(kokv1.MachineDegraded), r.Phase)
	require.Contains(t, condOf(r, kokv1.MachineConditionPackagesInSync).Message, "sha256 mismatch")
	require.True(t, r.Schedulable, "the previous version still serves: a bad release must not cordon the node (or a fleet)")
	require.NotContains(t, w.sched, false)
}

func TestUnhealthyComponentCordons(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	w.unhealthy["runtime"] = "crashloop: exit status 1"
	run(t, w)
	r := w.lastReport()
	require.Equal(t, string(kokv1.MachineDegraded), r.Phase)
	require.False(t, r.Schedulable)
	require.Equal(t, "components are not all installed and healthy", condOf(r, kokv1.MachineConditionSchedulable).Message)
	require.Contains(t, condOf(r, kokv1.MachineConditionPackagesInSync).Message, "runtime 1 is unhealthy: crashloop: exit status 1")
	require.NotContains(t, w.sched, true)
}

func TestReadinessGates(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	w.desired.Gates = []kube.GateSpec{{Type: "NetworkReady", Mode: "Continuous"}, {Type: "LogsReady", Mode: "Continuous"}}
	var afterOne, afterBoth kube.MachineReport
	run(t, w,
		func(*testsuite.TestWorkflowEnvironment) time.Duration {
			w.update(func(w *fakeWorld) {
				w.desired.Conditions = []kube.ReportedCondition{{Type: "NetworkReady", Status: "True"}}
			})
			return 0
		},
		func(*testsuite.TestWorkflowEnvironment) time.Duration {
			afterOne = w.lastReport()
			w.update(func(w *fakeWorld) {
				w.desired.Conditions = []kube.ReportedCondition{{Type: "LogsReady", Status: "True"}, {Type: "NetworkReady", Status: "True"}}
			})
			return 0
		},
		func(*testsuite.TestWorkflowEnvironment) time.Duration {
			afterBoth = w.lastReport()
			w.update(func(w *fakeWorld) {
				w.desired.Conditions = []kube.ReportedCondition{{Type: "LogsReady", Status: "False", Message: "crashloop"}, {Type: "NetworkReady", Status: "True"}}
			})
			return 0
		},
	)
	require.False(t, afterOne.Schedulable)
	require.Contains(t, condOf(afterOne, kokv1.MachineConditionSchedulable).Message, "readiness gate LogsReady: no condition reported")
	require.True(t, afterBoth.Schedulable)
	r := w.lastReport()
	require.False(t, r.Schedulable)
	require.Equal(t, "readiness gate LogsReady is False: crashloop", condOf(r, kokv1.MachineConditionSchedulable).Message)
	require.Equal(t, []bool{false, false, true, false}, w.sched)
}

func TestWaitsForNodeRegistration(t *testing.T) {
	w := newWorld(pkg("kubelet", "v1"))
	w.node = false
	run(t, w, func(*testsuite.TestWorkflowEnvironment) time.Duration {
		w.update(func(w *fakeWorld) { w.node = true })
		return 0
	})
	require.NotEmpty(t, w.sched, "the node is made schedulable once it registers")
	require.NotContains(t, w.sched, false)
	require.True(t, w.lastReport().Schedulable)
}

func TestDriftRepairIsRecordedAsEvent(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	env := newEnv()
	w.mock(env)
	// After the install, the service is found stopped at the next drift check (5m later).
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.repairs["runtime"] = []string{"restarted stopped service runtime"} })
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Found = false })
		env.SignalWorkflow(SignalReconcile, nil)
	}, 7*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())
	require.Len(t, w.events, 1)
	require.Equal(t, kokv1.ReasonDriftCorrected, w.events[0].Reason)
	require.Equal(t, "runtime 1: restarted stopped service runtime", w.events[0].Message)
}

func TestDeleteRemovesPackagesDependentsFirstAndReleases(t *testing.T) {
	w := newWorld(pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"))
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Deleting = true })
		env.SignalWorkflow(SignalReconcile, nil)
	}, time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())
	calls := w.hostCalls()
	require.Equal(t, []string{"remove kubelet", "remove runtime"}, calls[len(calls)-2:])
	require.Equal(t, &kube.ReleaseMachineParams{Name: "n1", DeleteNode: true}, w.released)
	require.Equal(t, false, w.sched[len(w.sched)-1], "the node is cordoned before teardown")
}

func TestOrphanDeleteLeavesHostAlone(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Deleting, w.desired.Orphan = true, true })
		env.SignalWorkflow(SignalReconcile, nil)
	}, time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())
	require.Zero(t, count(w.hostCalls(), "remove runtime"))
	require.Equal(t, &kube.ReleaseMachineParams{Name: "n1", DeleteNode: false}, w.released)
}

func TestPausedChangesNothing(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	w.desired.Paused = true
	run(t, w)
	require.Empty(t, w.hostCalls())
	require.Equal(t, string(kokv1.MachinePaused), w.lastReport().Phase)
}

func TestContinuesAsNewWithState(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	env := newEnv()
	w.mock(env)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1", State: State{Passes: maxPasses - 1, Bootstrapped: true}})
	err := env.GetWorkflowError()
	require.True(t, workflow.IsContinueAsNewError(err), "want continue-as-new, got %v", err)
	var next Params
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, err, &can)
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	// By wire name: a function reference resolves to its short name, "Workflow", which on the
	// real worker is also the Cluster workflow's.
	require.Equal(t, WorkflowName, can.WorkflowType.Name)
	require.Equal(t, "n1", next.Machine)
	require.True(t, next.State.Bootstrapped, "state survives continue-as-new")
	require.Zero(t, next.State.Passes)
}

func count(ss []string, s string) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}
