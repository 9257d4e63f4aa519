package machine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
)

func queryState(t *testing.T, env *testsuite.TestWorkflowEnvironment) State {
	t.Helper()
	v, err := env.QueryWorkflow(QueryState)
	require.NoError(t, err)
	var s State
	require.NoError(t, v.Get(&s))
	return s
}

// end deletes the Machine (Found=false) at the offset, so the workflow finishes.
func end(env *testsuite.TestWorkflowEnvironment, w *fakeWorld, at time.Duration) {
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Found = false })
		env.SignalWorkflow(SignalReconcile, nil)
	}, at)
}

// (a) At rest a Machine costs one InspectHost and one timer per jittered drift interval (the
// default 15 min), and writes nothing to the API server.
func TestAtRestCostsAlmostNothing(t *testing.T) {
	w := newWorld(pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"), pkg("log-collector", "2", "kubelet"))
	w.desired.DriftInterval = kube.DefaultDriftInterval
	env := newEnv()
	w.mock(env)
	const converged, hours = 30 * time.Minute, 10
	var startedAt, timersAt, reportsAt, schedAt, callsAt int
	env.RegisterDelayedCallback(func() {
		require.Equal(t, string(kokv1.MachineReady), w.lastReport().Phase)
		w.mu.Lock()
		startedAt, timersAt, reportsAt, schedAt = len(w.started), w.timers, len(w.reports), len(w.sched)
		w.mu.Unlock()
		callsAt = len(w.hostCalls())
	}, converged)
	var activities, timers, reports, sched, hostCalls, inspects int
	env.RegisterDelayedCallback(func() {
		w.mu.Lock()
		activities, timers = len(w.started)-startedAt, w.timers-timersAt
		reports, sched = len(w.reports)-reportsAt, len(w.sched)-schedAt
		inspects = count(w.started[startedAt:], hostapi.ActivityInspectHost)
		w.mu.Unlock()
		hostCalls = len(w.hostCalls()) - callsAt
	}, converged+hours*time.Hour)
	end(env, w, converged+hours*time.Hour+time.Second)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())

	perHour := float64(activities+timers) / hours
	t.Logf("at rest over %dh: %d activities (%d InspectHost), %d timers: %.1f actions per machine-hour; %d status writes, %d cordon calls, %d other host calls",
		hours, activities, inspects, timers, perHour, reports, sched, hostCalls)
	require.LessOrEqual(t, perHour, 10.0)
	require.Equal(t, activities, inspects, "at rest the only activity is InspectHost")
	require.Zero(t, reports, "no status write at rest")
	require.Zero(t, sched, "no cordon call at rest")
	require.Zero(t, hostCalls)

	// Payload bytes of one look, as they go into history (JSON, as the default converter).
	specs := w.desired.Packages
	params, _ := json.Marshal(hostapi.InspectHostParams{Digest: hostapi.DesiredDigest(specs), RepairsSince: 0})
	res, err := w.InspectHost(t.Context(), hostapi.InspectHostParams{Digest: hostapi.DesiredDigest(specs)})
	require.NoError(t, err)
	result, _ := json.Marshal(res)
	t.Logf("InspectHost payloads: params %d B, result %d B (3 packages)", len(params), len(result))
}

// The old loop's cost at rest with the same three packages and its 5-minute default, for the
// design note: the legacy run is what replays old histories.
func TestLegacyCostAtRestForComparison(t *testing.T) {
	w := newWorld(pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"), pkg("log-collector", "2", "kubelet"))
	env := newEnv()
	w.mock(env)
	env.OnGetVersion(changeAtRest, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	var startedAt, timersAt, reportsAt int
	env.RegisterDelayedCallback(func() {
		w.mu.Lock()
		startedAt, timersAt, reportsAt = len(w.started), w.timers, len(w.reports)
		w.mu.Unlock()
	}, 30*time.Minute)
	var activities, timers, reports int
	env.RegisterDelayedCallback(func() {
		w.mu.Lock()
		activities, timers, reports = len(w.started)-startedAt, w.timers-timersAt, len(w.reports)-reportsAt
		w.mu.Unlock()
	}, 30*time.Minute+2*time.Hour)
	end(env, w, 30*time.Minute+2*time.Hour+time.Second)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())
	t.Logf("legacy at rest: %.1f activities, %.1f timers, %.1f status reports per machine-hour", float64(activities)/2, float64(timers)/2, float64(reports)/2)
}

// (b) The agent goes away for 3 minutes in the middle of an upgrade: the workflow waits for it
// (WaitingForAgent, AgentConnected=False), remembers no failure, and converges once it is back,
// with no spec edit.
func TestAgentAbsentMidUpgradeConverges(t *testing.T) {
	w := newWorld(pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"))
	w.downOn, w.downFor = "ensure kubelet v2", 3*time.Minute
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) {
			w.desired.Generation = 2
			w.desired.Packages = []hostapi.PackageSpec{pkg("runtime", "2"), pkg("kubelet", "v2", "runtime")}
		})
		env.SignalWorkflow(SignalReconcile, nil)
	}, time.Minute)
	var during State
	var duringReport kube.MachineReport
	env.RegisterDelayedCallback(func() {
		during = queryState(t, env)
		duringReport = w.lastReport()
	}, 3*time.Minute)
	end(env, w, 12*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())

	require.Equal(t, StageWaitingForAgent, during.Stage)
	require.Empty(t, during.Failed, "an absent agent is not a failed package")
	c := condOf(duringReport, kokv1.MachineConditionAgentConnected)
	require.Equal(t, "False", c.Status)
	require.Equal(t, kokv1.ReasonAgentAbsent, c.Reason)
	require.Contains(t, c.Message, "ScheduleToStart")

	require.Equal(t, "v2", w.installed["kubelet"].Version)
	require.Equal(t, "2", w.installed["runtime"].Version)
	r := w.lastReport()
	require.Equal(t, string(kokv1.MachineReady), r.Phase, "converged once the agent was back (last report: %+v)", r)
	require.Equal(t, "True", condOf(r, kokv1.MachineConditionAgentConnected).Status)
}

// (c) An artifact server answering 503 is waited for (WaitingForArtifact), then the install
// succeeds.
func TestArtifactUnavailableWaitsThenSucceeds(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) {
			w.artifactDown["runtime@2"] = w.now().Add(4 * time.Minute)
			w.desired.Generation = 2
			w.desired.Packages = []hostapi.PackageSpec{pkg("runtime", "2")}
		})
		env.SignalWorkflow(SignalReconcile, nil)
	}, time.Minute)
	var stages []Stage
	var duringReport kube.MachineReport
	for at := 90 * time.Second; at < 5*time.Minute; at += 10 * time.Second {
		env.RegisterDelayedCallback(func() {
			s := queryState(t, env)
			require.Empty(t, s.Failed, "an unavailable artifact is not a failed package")
			stages = append(stages, s.Stage)
			if s.Stage == StageWaitingForArtifact {
				duringReport = w.lastReport()
			}
		}, at)
	}
	end(env, w, 15*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())

	require.Contains(t, stages, StageWaitingForArtifact)
	require.Equal(t, kokv1.ReasonArtifactUnavailable, condOf(duringReport, kokv1.ConditionProgressing).Reason)
	require.Equal(t, "2", w.installed["runtime"].Version)
	require.Equal(t, string(kokv1.MachineReady), w.lastReport().Phase)
}

// (d) A checksum mismatch is remembered (tried once); a new kok.dev/retry value retries it once.
func TestChecksumMismatchIsRememberedUntilRetryAnnotation(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	bad := temporal.NewNonRetryableApplicationError("sha256 mismatch for runtime 2", hostapi.ErrTypeChecksumMismatch, nil)
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) {
			w.failWith["runtime@2"] = bad
			w.desired.Generation = 2
			w.desired.Packages = []hostapi.PackageSpec{pkg("runtime", "2")}
		})
		env.SignalWorkflow(SignalReconcile, nil)
	}, time.Minute)
	var remembered State
	env.RegisterDelayedCallback(func() {
		remembered = queryState(t, env)
		w.update(func(w *fakeWorld) { delete(w.failWith, "runtime@2") }) // the artifact was fixed
		env.SignalWorkflow(SignalReconcile, nil)                         // a wake-up alone retries nothing
	}, 20*time.Minute)
	var beforeRetry int
	env.RegisterDelayedCallback(func() {
		beforeRetry = count(w.hostCalls(), "ensure runtime 2")
		w.update(func(w *fakeWorld) { w.desired.Retry = "2026-12-02T23:00:00Z" })
		env.SignalWorkflow(SignalReconcile, nil)
	}, 25*time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalReconcile, nil) }, 27*time.Minute) // same value: nothing more
	end(env, w, 30*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())

	require.Contains(t, remembered.Failed, "runtime@2")
	require.Equal(t, 1, beforeRetry, "a checksum mismatch is tried once per generation, however long it waits")
	require.Equal(t, 2, count(w.hostCalls(), "ensure runtime 2"), "the retry annotation retries it once: %v", w.hostCalls())
	require.Equal(t, "2", w.installed["runtime"].Version)
	require.Equal(t, string(kokv1.MachineReady), w.lastReport().Phase)
}

// (e) A Machine deleted and created again under the same name is a new Machine: the old one's
// teardown (waiting for an absent agent) stops without releasing anything, and what was
// remembered of the old object is forgotten.
func TestUIDChangeIsANewMachine(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	w.desired.UID = "uid-1"
	w.failWith["runtime@1"] = temporal.NewNonRetryableApplicationError("bad spec", hostapi.ErrTypeBadSpec, nil)
	env := newEnv()
	w.mock(env)
	var first State
	env.RegisterDelayedCallback(func() {
		first = queryState(t, env)
		w.update(func(w *fakeWorld) {
			w.desired.Deleting = true
			w.absentUntil = w.now().Add(time.Hour) // the agent is gone: the teardown waits
		})
		env.SignalWorkflow(SignalReconcile, nil)
	}, time.Minute)
	var tearing State
	env.RegisterDelayedCallback(func() {
		tearing = queryState(t, env)
		w.update(func(w *fakeWorld) { // the old object was force-removed; a new one took its name
			w.desired = kube.MachineDesired{Found: true, UID: "uid-2", Generation: 1, Host: "h1", DriftInterval: 5 * time.Minute, Packages: []hostapi.PackageSpec{pkg("runtime", "1")}}
			w.absentUntil = time.Time{}
			delete(w.failWith, "runtime@1")
		})
		env.SignalWorkflow(SignalReconcile, nil)
	}, 5*time.Minute)
	var second State
	env.RegisterDelayedCallback(func() { second = queryState(t, env) }, 20*time.Minute)
	end(env, w, 21*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())

	require.Equal(t, "uid-1", first.UID)
	require.Contains(t, first.Failed, "runtime@1")
	require.Equal(t, StageTearingDownWaitingForAgent, tearing.Stage)
	require.Nil(t, w.released, "the old Machine's release never touches the new one")
	require.Equal(t, "uid-2", second.UID)
	require.Empty(t, second.Failed, "nothing remembered of the old object")
	require.Equal(t, "1", w.installed["runtime"].Version)
	require.Equal(t, string(kokv1.MachineReady), w.lastReport().Phase)
}

// (f) A teardown whose agent is dead waits in TearingDownWaitingForAgent (never fails, so the
// finalizer is not stranded) until a person orphans the host.
func TestTeardownWithDeadAgentWaitsUntilOrphaned(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	w.desired.UID = "uid-1"
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) {
			w.desired.Deleting = true
			w.absentUntil = w.now().Add(100 * time.Hour)
		})
		env.SignalWorkflow(SignalReconcile, nil)
	}, time.Minute)
	var waiting State
	var waitingReport kube.MachineReport
	env.RegisterDelayedCallback(func() { waiting, waitingReport = queryState(t, env), w.lastReport() }, 30*time.Minute)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Orphan = true }) // kok.dev/orphan=true; no signal needed
	}, 40*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())

	require.Equal(t, StageTearingDownWaitingForAgent, waiting.Stage)
	require.Equal(t, string(kokv1.MachineDeleting), waitingReport.Phase)
	require.Contains(t, condOf(waitingReport, kokv1.ConditionProgressing).Message, "kok.dev/orphan=true")
	require.Equal(t, &kube.ReleaseMachineParams{Name: "n1", DeleteNode: false, UID: "uid-1"}, w.released)
	require.Zero(t, count(w.hostCalls(), "remove runtime"))
}

// An agent of an older release does not serve InspectHost: every look falls back to the full
// drift check, and the Machine still converges (and writes no status at rest).
func TestOldAgentFallsBackToFullDriftCheck(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	w.oldAgent = true
	env := newEnv()
	w.mock(env)
	var reportsAt int
	env.RegisterDelayedCallback(func() {
		w.mu.Lock()
		reportsAt = len(w.reports)
		w.mu.Unlock()
	}, time.Minute)
	end(env, w, time.Hour)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, string(kokv1.MachineReady), w.lastReport().Phase)
	require.GreaterOrEqual(t, count(w.hostCalls(), "ensure runtime 1"), 10, "the drift check runs every interval")
	require.Equal(t, reportsAt, len(w.reports), "no status write while nothing changes")
}

// The reconcile signal's Inputs are reported as status.observedInputs after the Machine was
// read; an empty signal (old watchers, the CLI) still wakes the workflow.
func TestSignalInputsAreReportedAsObserved(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Isolations = []string{"alice"} })
		env.SignalWorkflow(SignalReconcile, ReconcileSignal{Inputs: "digest-1"})
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		w.update(func(w *fakeWorld) { w.desired.Isolations = nil })
		env.SignalWorkflow(SignalReconcile, nil)
	}, 2*time.Minute)
	end(env, w, 3*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, []bool{true, false, true}, w.sched)
	require.Equal(t, "digest-1", w.lastReport().ObservedInputs)
}

// A signal pending when the run is due to continue as new does not keep it going: it is carried
// as PendingReconcile.
func TestContinueAsNewCarriesAPendingSignal(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalReconcile, ReconcileSignal{Inputs: "d2"}) }, 0)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1", State: State{Passes: maxPasses - 1}})
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next Params
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.True(t, next.State.PendingReconcile)
	require.Equal(t, "d2", next.State.Inputs)
}

// No machine operator serves the cluster's queue (the cluster is gone, its operator is down):
// the workflow waits in WaitingForOperator with backoff, and goes on when one is back.
func TestNoOperatorIsWaitedFor(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	env := newEnv()
	w.mock(env)
	w.kubeDown = env.Now().Add(10 * time.Minute)
	var during State
	env.RegisterDelayedCallback(func() { during = queryState(t, env) }, 5*time.Minute)
	end(env, w, 30*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, StageWaitingForOperator, during.Stage)
	require.Less(t, w.countStarted("ReadMachine"), 15, "with backoff, not a tight loop")
	require.Equal(t, string(kokv1.MachineReady), w.lastReport().Phase)
}

// A status write that fails never holds the loop; the unwritten report is written at a later
// pass.
func TestFailedStatusWriteDoesNotStopTheWork(t *testing.T) {
	w := newWorld(pkg("runtime", "1"))
	w.statusDown = true
	env := newEnv()
	w.mock(env)
	env.RegisterDelayedCallback(func() { w.update(func(w *fakeWorld) { w.statusDown = false }) }, 10*time.Minute)
	end(env, w, 40*time.Minute)
	env.ExecuteWorkflow(Workflow, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, env.GetWorkflowError())
	require.Equal(t, "1", w.installed["runtime"].Version, "installed while status could not be written")
	require.Equal(t, []bool{true}, w.sched)
	require.NotEmpty(t, w.reports)
	require.Equal(t, string(kokv1.MachineReady), w.lastReport().Phase, "written once the API server took writes again")
}
