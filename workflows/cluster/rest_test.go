package cluster

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	hosted "kok.dev/activities/provider/kok"
	kokv1 "kok.dev/api/v1alpha1"
)

// A healthy cluster at rest: after the first pass (one check, one status write) the entity
// costs one ReadCluster and one WatchControlPlane every ~6 hours, and writes nothing.
func TestHealthyClusterAtRestCostsAlmostNothing(t *testing.T) {
	w := newWorld(rel136, "m1", "m2", "m3")
	s := w.created(rel136)
	w.spec.CheckInterval = 30 * time.Second // the default: the watch checks inside its activity
	env := w.env()
	var first snapshot
	w.at(env, time.Minute, &first)
	end := w.run(t, env, s, 24*time.Hour)

	require.Len(t, first.reports, 1, "the first pass writes the status once")
	require.Len(t, end.reports, 1, "nothing new in 24 hours: no status write")
	require.Empty(t, end.children)
	require.Zero(t, end.activities["Facts"], "agents are asked only when some API server is not ready")
	require.Equal(t, 1, end.activities["CheckControlPlane"])
	// 24 h / (6 h ± 10%) watches, each followed by a ReadCluster; the last ReadCluster sees the
	// Cluster gone and releases it.
	require.LessOrEqual(t, end.activities["WatchControlPlane"], 5)
	require.LessOrEqual(t, end.activities["ReadCluster"], 6)
	require.LessOrEqual(t, end.totalActivities(), 14, "%v", end.activities)
	t.Logf("activities in 24 h at rest: %v (total %d)", end.activities, end.totalActivities())

	r := end.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
	require.True(t, condOf(r, kokv1.ConditionReady).Status)
	require.False(t, condOf(r, kokv1.ConditionDegraded).Status)
	require.True(t, condOf(r, kokv1.ClusterConditionReachable).Status)

	// The payloads one cycle puts into history (ReadCluster's result, WatchControlPlane's input
	// and result), for the design note's arithmetic.
	view, _ := w.ReadCluster(context.Background(), controlplane.ReadClusterParams{})
	w.mu.Lock()
	watch := w.watching
	w.mu.Unlock()
	res := controlplane.WatchResult{CheckResult: watch.Last}
	size := func(v any) int { b, _ := json.Marshal(v); return len(b) }
	t.Logf("payload bytes per cycle: ReadCluster result %d, WatchControlPlane input %d, result %d",
		size(view), size(watch), size(res))
}

// A partition between the meta cluster and the masters for hours: no heal, no recovery
// counted, no WaitingForHuman; status says Reachable False, and clears when they answer.
func TestPartitionIsNotAFault(t *testing.T) {
	w := newWorld(rel136, "m1", "m2", "m3")
	s := w.created(rel136)
	env := w.env()
	w.later(env, time.Hour, func(w *world) {
		for _, h := range []string{"m1", "m2", "m3"} {
			w.unreachable[h] = true
		}
	})
	var during snapshot
	w.at(env, 5*time.Hour, &during)
	w.later(env, 6*time.Hour, func(w *world) { w.unreachable = map[string]bool{} })
	end := w.run(t, env, s, 8*time.Hour)

	require.Empty(t, end.children, "nothing is healed")
	require.NotContains(t, end.phases(), string(kokv1.ClusterWaitingForHuman))
	r := during.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
	reach := condOf(r, kokv1.ClusterConditionReachable)
	require.False(t, reach.Status)
	require.Equal(t, kokv1.ReasonUnreachable, reach.Reason)
	require.Contains(t, reach.Message, "[m1 m2 m3]")
	require.Equal(t, kokv1.ReasonUnreachable, condOf(r, kokv1.ConditionReady).Reason)
	require.False(t, condOf(r, kokv1.ConditionDegraded).Status, "no master is known to be unhealthy")
	require.Zero(t, r.RecentAutoRecoveries)
	require.Len(t, during.reports, 2, "one write when the partition began, none while it lasted")

	r = end.last()
	require.True(t, condOf(r, kokv1.ClusterConditionReachable).Status)
	require.True(t, condOf(r, kokv1.ConditionReady).Status)
	require.Len(t, end.reports, 3)
}

// Three planned restarts of the local system within an hour: each time the masters give no
// answer for a while, then come up by themselves (the agent starts the services on boot). A
// heal that finds nothing to repair is not a recovery: none is counted, no WaitingForHuman.
func TestPlannedRestartsAreNotRecoveries(t *testing.T) {
	w := newWorld(rel136, "m1")
	s := w.created(rel136)
	env := w.env()
	w.selfStarts = true
	for _, at := range []time.Duration{5 * time.Minute, 25 * time.Minute, 45 * time.Minute} {
		w.later(env, at, func(w *world) { w.unreachable["m1"] = true })
		// Back up: the agent answers, the API server is still starting (it becomes ready by
		// itself, while the heal looks at it, without kok changing anything).
		w.later(env, at+10*time.Minute, func(w *world) {
			w.unreachable["m1"] = false
			w.down["m1"] = "readyz: [-]etcd not ready yet"
		})
	}
	end := w.run(t, env, s, 2*time.Hour)

	require.NotContains(t, end.phases(), string(kokv1.ClusterWaitingForHuman))
	require.NotContains(t, end.eventReasons(), kokv1.ReasonRecoveryLimitReached)
	for _, r := range end.reports {
		require.Zero(t, r.RecentAutoRecoveries, "a restart that finished on its own is no recovery")
	}
	r := end.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
	require.True(t, condOf(r, kokv1.ConditionReady).Status)
	require.False(t, condOf(r, kokv1.ConditionDegraded).Status)
	require.Len(t, end.children, 3, "each restart is looked at once it is confirmed; the heal finds nothing to repair")
	require.NotContains(t, end.eventReasons(), kokv1.ReasonHealFailed)
}

// A wait for a human whose cause goes away: the masters are still watched, and the wait ends
// by itself after healthy checks in a row; Ready and Degraded agree throughout.
func TestWaitingForHumanEndsByItselfAfterHealthyChecks(t *testing.T) {
	w := newWorld(rel136, "m1")
	s := w.created(rel136)
	w.down["m1"] = "readyz: [-]etcd failed: context deadline exceeded"
	env := w.env()
	var waiting snapshot
	w.at(env, time.Hour, &waiting)
	w.later(env, 2*time.Hour, func(w *world) { delete(w.down, "m1") }) // the disk was replaced, say
	end := w.run(t, env, s, 3*time.Hour)

	r := waiting.last()
	require.Equal(t, string(kokv1.ClusterWaitingForHuman), r.Phase)
	require.Equal(t, kokv1.ReasonRecoveryLimitReached, condOf(r, kokv1.ConditionReady).Reason)
	require.True(t, condOf(r, kokv1.ConditionDegraded).Status)

	require.Contains(t, end.eventReasons(), kokv1.ReasonRecoveredByItself)
	require.Equal(t, waiting.children, end.children, "nothing was healed to end the wait")
	r = end.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
	require.True(t, condOf(r, kokv1.ConditionReady).Status)
	require.False(t, condOf(r, kokv1.ConditionDegraded).Status)
}

// A person resolves through the API: each new value of the annotation kok.dev/resolve ends one
// wait for a human (the budget starts again); the same value again, or a value set while
// nothing waited, resolves nothing.
func TestResolveByAnnotationOncePerValue(t *testing.T) {
	w := newWorld(rel136, "m1")
	s := w.created(rel136)
	w.spec.Resolve = "set-before-any-escalation"
	w.down["m1"] = "readyz: [-]etcd failed"
	env := w.env()
	setResolve := func(at time.Duration, value string) {
		w.edit(env, at, func(v *controlplane.ClusterView) { v.Resolve = value })
	}
	var first, again, same snapshot
	w.at(env, 50*time.Minute, &first)
	setResolve(time.Hour, "2026-12-02T10:00:00Z")
	w.at(env, 2*time.Hour, &again)
	setResolve(2*time.Hour+time.Minute, "2026-12-02T10:00:00Z") // an edit that keeps the value
	w.at(env, 3*time.Hour, &same)
	setResolve(3*time.Hour+time.Minute, "2026-12-02T12:00:00Z")
	end := w.run(t, env, s, 4*time.Hour)

	require.Len(t, first.children, 3, "the value set before the escalation resolves nothing")
	require.Equal(t, string(kokv1.ClusterWaitingForHuman), first.last().Phase)
	require.Len(t, again.children, 6, "a new value: the budget starts again")
	require.Contains(t, again.eventReasons(), kokv1.ReasonResolvedByHuman)
	require.Len(t, same.children, 6, "the same value again resolves nothing")
	require.Equal(t, string(kokv1.ClusterWaitingForHuman), same.last().Phase)
	require.Len(t, end.children, 9)
}

// hostedWorld stands in for provider kok's workloads.
type hostedWorld struct {
	*world
	rolledOut string            // the release the workloads run
	broken    map[string]string // releases whose pods never get ready
	notReady  string            // a pod down, for this reason
	statuses  int
	watches   int

	hostedWatching hosted.WatchParams
}

func (h *hostedWorld) EnsureControlPlane(_ context.Context, p hosted.EnsureParams) (hosted.EnsureResult, error) {
	h.update(func(*world) { h.rolledOut = p.PackageVersion })
	return hosted.EnsureResult{}, nil
}

func (h *hostedWorld) ControlPlaneStatus(_ context.Context, p hosted.StatusParams) (hosted.Status, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.statuses++
	switch {
	case h.broken[h.rolledOut] != "":
		return hosted.Status{Message: h.broken[h.rolledOut]}, nil
	case h.notReady != "":
		return hosted.Status{Message: h.notReady}, nil
	case p.PackageVersion != "" && p.PackageVersion != h.rolledOut:
		return hosted.Status{Message: "rolling out"}, nil
	}
	return hosted.Status{Ready: true, PackageVersion: h.rolledOut}, nil
}

// WatchControlPlaneStatus answers once the watch is over (see hostedWatchWait).
func (h *hostedWorld) WatchControlPlaneStatus(ctx context.Context, p hosted.WatchParams) (hosted.WatchResult, error) {
	h.update(func(*world) { h.watches++ })
	st, _ := h.ControlPlaneStatus(ctx, p.StatusParams)
	return hosted.WatchResult{Status: st, Changed: st.Key() != p.Last}, nil
}

// hostedWatchWait is how long the watch in flight runs on the workflow clock, as watchWait.
func (h *hostedWorld) hostedWatchWait(env *testsuite.TestWorkflowEnvironment) time.Duration {
	h.mu.Lock()
	p := h.hostedWatching
	h.mu.Unlock()
	st, _ := h.ControlPlaneStatus(context.Background(), p.StatusParams)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.statuses-- // not a look of the workflow's
	confirm := time.Duration(max(p.Confirm, 1)-1) * p.Interval
	if st.Key() != p.Last {
		return confirm
	}
	now := env.Now().Sub(h.start)
	wait := p.For
	for _, c := range h.changes {
		if c > now && c-now+confirm < wait {
			wait = c - now + confirm
		}
	}
	return wait
}

func (h *hostedWorld) env() *testsuite.TestWorkflowEnvironment {
	env := h.world.env()
	env.RegisterWorkflowWithOptions(HostedWorkflow, workflow.RegisterOptions{Name: HostedWorkflowName})
	env.RegisterActivity(&hosted.Activities{})
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		h.update(func(w *world) { w.activities[info.ActivityType.Name]++ })
		if info.ActivityType.Name == "WatchControlPlaneStatus" {
			var p hosted.WatchParams
			if err := args.Get(&p); err == nil {
				h.update(func(*world) { h.hostedWatching = p })
			}
		}
	})
	env.OnActivity(kokActs.WatchControlPlaneStatus, mock.Anything, mock.Anything).AfterFn(func() time.Duration { return h.hostedWatchWait(env) }).Return(h.WatchControlPlaneStatus)
	env.OnActivity(kokActs.EnsureControlPlane, mock.Anything, mock.Anything).Return(h.EnsureControlPlane)
	env.OnActivity(kokActs.ControlPlaneStatus, mock.Anything, mock.Anything).Return(h.ControlPlaneStatus)
	return env
}

// Provider kok keeps checking its workloads after a rolled-back upgrade and while a version
// skew is refused, as provider process does: a workload that goes down later is reported.
func TestHostedKeepsCheckingHealthAfterRollbackAndRefusedSkew(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target controlplane.Release
		reason string
	}{
		{"after a rolled-back upgrade", rel137, kokv1.ReasonRolledBack},
		{"while a version skew is refused", rel138, kokv1.ReasonUnsupportedVersionSkew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hostedWorld{world: newWorld(rel136), rolledOut: rel136.Name, broken: map[string]string{"k8s-1.37.0": "kube-apiserver: 0 of 1 ready"}}
			h.spec.Provider, h.spec.MasterCount = string(kokv1.ProviderKok), 1
			s := State{Created: true, Releases: map[string]controlplane.Release{rel136.Name: rel136},
				Report: controlplane.ClusterReport{Name: clusterName, Phase: string(kokv1.ClusterRunning), Current: rel136.Name, HasKubeconfig: true}}
			h.current = rel136.Name
			h.spec.Generation, h.spec.TargetName = 2, tc.target.Name
			env := h.env()
			var before snapshot
			h.at(env, 10*time.Minute, &before)
			h.later(env, 11*time.Minute, func(*world) { h.notReady = "etcd: 0 of 1 ready" })
			end := h.run(t, env, s, 11*time.Minute+3*checkInterval)

			require.Equal(t, tc.reason, condOf(before.last(), kokv1.ConditionReady).Reason)
			require.Positive(t, before.activities["WatchControlPlaneStatus"], "the workloads are watched")
			r := end.last()
			require.True(t, condOf(r, kokv1.ConditionDegraded).Status, "a workload that went down is reported")
			require.Equal(t, kokv1.ReasonWorkloadsNotReady, condOf(r, kokv1.ConditionReady).Reason)
		})
	}
}

// A run started by the older code (no cluster-at-rest marker in its history) keeps its
// passes: a check, the agents' facts and a status report every interval, and no watch.
func TestRunsOfOlderCodeKeepTheirPasses(t *testing.T) {
	w := newWorld(rel136, "m1")
	s := w.created(rel136)
	env := w.env()
	env.OnGetVersion(ChangeAtRest, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	end := w.run(t, env, s, 10*checkInterval+time.Minute)

	require.Zero(t, end.activities["WatchControlPlane"])
	require.GreaterOrEqual(t, end.activities["CheckControlPlane"], 10)
	require.GreaterOrEqual(t, end.activities["Facts"], 10)
	require.GreaterOrEqual(t, end.activities["ReportClusterStatus"], 10)
}

// Provider kok at rest costs the same handful: its workloads are watched inside one activity.
func TestHostedClusterAtRestCostsAlmostNothing(t *testing.T) {
	h := &hostedWorld{world: newWorld(rel136), rolledOut: rel136.Name, broken: map[string]string{}}
	h.spec.Provider, h.spec.MasterCount = string(kokv1.ProviderKok), 1
	h.spec.CheckInterval = 30 * time.Second
	h.current = rel136.Name
	s := State{Created: true, Releases: map[string]controlplane.Release{rel136.Name: rel136},
		Report: controlplane.ClusterReport{Name: clusterName, Phase: string(kokv1.ClusterRunning), Current: rel136.Name, HasKubeconfig: true}}
	end := h.run(t, h.env(), s, 24*time.Hour)

	require.Len(t, end.reports, 1)
	require.Equal(t, 1, end.activities["ControlPlaneStatus"])
	require.LessOrEqual(t, end.activities["WatchControlPlaneStatus"], 5)
	require.LessOrEqual(t, end.totalActivities(), 14, "%v", end.activities)
	require.True(t, condOf(end.last(), kokv1.ConditionReady).Status)
}

// An upgrade that did not start (a master looked unhealthy for a moment) is tried again after
// one check interval, not after a whole watch.
func TestAnUpgradeThatDidNotStartIsRetriedSoon(t *testing.T) {
	w := newWorld(rel136, "m1")
	s := w.created(rel136)
	w.spec.Generation, w.spec.TargetName = 2, rel137.Name
	w.downForChecks["m1"] = 1 // the upgrade's own first look sees m1 not ready
	end := w.run(t, w.env(), s, 30*time.Minute)

	require.Equal(t, []string{UpgradeWorkflowName, UpgradeWorkflowName}, end.children)
	require.Equal(t, rel137.Name, end.last().Current)
	require.Equal(t, string(kokv1.ClusterRunning), end.last().Phase)
}
