package machine

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"kok.dev/contract/hostapi"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

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

	applied      map[string]hostapi.PackageSpec // the specs the agent has applied (its digest)
	oldAgent     bool                           // the agent does not register InspectHost
	localRepairs []hostapi.LocalRepair          // the agent's local loop's repairs
	now          func() time.Time               // the test environment's clock
	absentUntil  time.Time                      // the agent does not poll before then
	downOn       string                         // the agent goes away for downFor at this host call
	downFor      time.Duration
	artifactDown map[string]time.Time // name@version: the artifact server answers 503 until then
	started      []string             // every activity attempt started, by name
	timers       int                  // timers scheduled
	kubeDown     time.Time            // no machine operator polls the cluster's queue before then
	statusDown   bool                 // the API server refuses status writes
}

func newWorld(pkgs ...hostapi.PackageSpec) *fakeWorld {
	return &fakeWorld{
		desired:      kube.MachineDesired{Found: true, Generation: 1, Host: "h1", DriftInterval: 5 * time.Minute, Packages: pkgs},
		installed:    map[string]hostapi.InstalledPackage{},
		failWith:     map[string]error{},
		repairs:      map[string][]string{},
		unhealthy:    map[string]string{},
		node:         true,
		applied:      map[string]hostapi.PackageSpec{},
		artifactDown: map[string]time.Time{},
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

// activities are the fakes under their wire names (the replay recorder registers them on a real
// worker too).
func (w *fakeWorld) activities() map[string]any {
	return map[string]any{
		"ReadMachine": w.ReadMachine, "ReportMachineStatus": w.ReportMachineStatus, "RecordMachineEvent": w.RecordMachineEvent,
		"SetNodeSchedulable": w.SetNodeSchedulable, "ReleaseMachine": w.ReleaseMachine,
		hostapi.ActivityFacts: w.Facts, hostapi.ActivityEnsurePackage: w.EnsurePackage, hostapi.ActivityRemovePackage: w.RemovePackage,
		hostapi.ActivityCheckHealth: w.CheckHealth, hostapi.ActivityInspectHost: w.InspectHost,
	}
}

// mock registers the fakes by name and counts what the workflow schedules.
func (w *fakeWorld) mock(env *testsuite.TestWorkflowEnvironment) {
	acts := w.activities()
	for _, name := range sortedKeys(acts) {
		env.RegisterActivityWithOptions(acts[name], activity.RegisterOptions{Name: name})
	}
	w.now = env.Now
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		w.update(func(w *fakeWorld) { w.started = append(w.started, info.ActivityType.Name) })
	})
	env.SetOnTimerScheduledListener(func(string, time.Duration) {
		w.update(func(w *fakeWorld) { w.timers++ })
	})
}

// The fake activities, with the real ones' names and signatures (the replay recorder registers
// them on a real worker).

func (w *fakeWorld) ReadMachine(context.Context, kube.ReadMachineParams) (kube.MachineDesired, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.now != nil && w.now().Before(w.kubeDown) {
		return kube.MachineDesired{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
	}
	return w.desired, nil
}

func (w *fakeWorld) ReportMachineStatus(_ context.Context, r kube.MachineReport) error {
	w.mu.Lock()
	down := w.statusDown
	w.mu.Unlock()
	if down {
		return errors.New("the server is currently unable to handle the request")
	}
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
	if err := w.absent("facts"); err != nil {
		return hostapi.FactsResult{}, err
	}
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
	if err := w.absent("ensure " + s.Name + " " + s.Version); err != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	w.calls = append(w.calls, "ensure "+s.Name+" "+s.Version)
	if err := w.failWith[s.Name+"@"+s.Version]; err != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	if until, ok := w.artifactDown[s.Name+"@"+s.Version]; ok && w.now().Before(until) {
		return hostapi.EnsurePackageResult{}, temporal.NewApplicationError("GET "+s.Name+": 503 Service Unavailable", errTypeArtifactUnavailable)
	}
	w.applied[s.Name] = s
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
	if err := w.absent("remove " + p.Name); err != nil {
		return hostapi.RemovePackageResult{}, err
	}
	w.calls = append(w.calls, "remove "+p.Name)
	prev, had := w.installed[p.Name]
	delete(w.installed, p.Name)
	delete(w.applied, p.Name)
	return hostapi.RemovePackageResult{Changed: had, Version: prev.Version}, nil
}

func (w *fakeWorld) CheckHealth(_ context.Context, p hostapi.CheckHealthParams) (hostapi.CheckHealthResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.absent("check " + p.Name); err != nil {
		return hostapi.CheckHealthResult{}, err
	}
	if msg, bad := w.unhealthy[p.Name]; bad {
		return hostapi.CheckHealthResult{Healthy: false, Message: msg}, nil
	}
	return hostapi.CheckHealthResult{Healthy: true}, nil
}

// InspectHost answers as an agent with a local loop would: the digest of what it applied, the
// repairs since the workflow last looked, the unhealthy packages.
func (w *fakeWorld) InspectHost(_ context.Context, p hostapi.InspectHostParams) (hostapi.InspectHostResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.oldAgent { // what an agent of an older release answers, as the SDK spells it
		return hostapi.InspectHostResult{}, temporal.NewApplicationError("unable to find activityType=InspectHost", errTypeNotRegistered)
	}
	if err := w.absent("inspect"); err != nil {
		return hostapi.InspectHostResult{}, err
	}
	specs := make([]hostapi.PackageSpec, 0, len(w.applied))
	for _, name := range sortedKeys(w.applied) {
		specs = append(specs, w.applied[name])
	}
	res := hostapi.InspectHostResult{Digest: hostapi.DesiredDigest(specs), BootID: "boot-1", RepairSeq: p.RepairsSince}
	for _, name := range sortedKeys(w.installed) {
		res.Installed = append(res.Installed, w.installed[name])
	}
	for _, r := range w.localRepairs {
		if r.Seq > p.RepairsSince {
			res.Repairs = append(res.Repairs, r)
			res.RepairSeq = r.Seq
		}
	}
	for _, name := range sortedKeys(w.unhealthy) {
		res.Unhealthy = append(res.Unhealthy, hostapi.PackageHealth{Name: name, Version: w.installed[name].Version, Message: w.unhealthy[name]})
	}
	return res, nil
}

// absent is the ScheduleToStart timeout a host task gets while the agent is away; call is the
// host call about to run (downOn sends the agent away at it).
func (w *fakeWorld) absent(call string) error {
	if w.now == nil {
		return nil
	}
	if w.downOn != "" && call == w.downOn {
		w.downOn, w.absentUntil = "", w.now().Add(w.downFor)
	}
	if w.now().Before(w.absentUntil) {
		return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
	}
	return nil
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

// (g) The agent's local repairs become one Event per batch; a host that differs from the spec
// (a package gone behind the workflow's back) runs the install path.
func TestLocalRepairsAreOneEventAndADifferentDigestReinstalls(t *testing.T) {
	w := newWorld(pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"))
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) {
			w.localRepairs = []hostapi.LocalRepair{
				{Seq: 7, Package: "runtime", Version: "1", What: "restarted stopped service runtime"},
				{Seq: 8, Package: "kubelet", Version: "v1", What: "rewrote /etc/kok/kubelet.conf (content differed)"},
			}
		})
	}, time.Minute)
	var callsBefore int
	env.RegisterDelayedCallback(func() {
		callsBefore = len(w.hostCalls())
		w.update(func(w *fakeWorld) { // someone removed kubelet by hand; the agent forgot its spec
			delete(w.installed, "kubelet")
			delete(w.applied, "kubelet")
		})
	}, 20*time.Minute)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Found = false })
		env.SignalWorkflow(SignalReconcile, nil)
	}, 40*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())

	require.Len(t, w.events, 1, "one Event for the batch, and not again at the next look")
	require.Equal(t, kokv1.ReasonDriftCorrected, w.events[0].Reason)
	require.Equal(t, "runtime 1: restarted stopped service runtime; kubelet v1: rewrote /etc/kok/kubelet.conf (content differed)", w.events[0].Message)
	after := w.hostCalls()[callsBefore:]
	require.Contains(t, after, "ensure kubelet v1", "a different digest runs the install path")
	require.Equal(t, "v1", w.installed["kubelet"].Version)
	require.Equal(t, string(kokv1.MachineReady), w.lastReport().Phase)
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

func (w *fakeWorld) countStarted(name string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return count(w.started, name)
}
