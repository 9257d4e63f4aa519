package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"kok.dev/activities/temporalops"

	"kok.dev/contract/hostapi"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/host"
	pkiacts "kok.dev/activities/pki"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
)

// The catalogue: a kube-apiserver's version is its Kubernetes version, so the fake health
// check can say which version a master serves from what is installed on it.
var (
	rel134 = release("k8s-1.34.2", "v1.34.2", "3.6.4", "0.34.0")
	rel136 = release("k8s-1.36.1", "v1.36.1", "3.6.4", "0.36.0")
	rel137 = release("k8s-1.37.0", "v1.37.0", "3.6.5", "0.37.0")
	rel138 = release("k8s-1.38.0", "v1.38.0", "3.6.5", "0.38.0")
)

func release(name, kube, etcd, operator string) controlplane.Release {
	return controlplane.Release{Name: name, KubernetesVersion: kube, Components: map[string]string{
		Etcd: etcd, KubeAPIServer: kube, KubeControllerManager: kube, KubeScheduler: kube, MachineOperator: operator,
	}}
}

// world stands in for the meta cluster and the master hosts behind the mocked activities: the
// Cluster's status is what the workflow last reported, and the masters really run what the
// workflow installs on them.
type world struct {
	mu        sync.Mutex
	spec      controlplane.ClusterView // ReadCluster's answer, Target and Current aside
	catalogue map[string]controlplane.Release
	current   string                       // status.currentPackageVersion as last reported
	installed map[string]map[string]string // host -> component -> version
	// down: the host's kube-apiserver is not ready, for this reason (a fault a restart does
	// not fix unless restartFixes is set); broken: a kube-apiserver version that never
	// becomes ready anywhere.
	down         map[string]string
	restartFixes bool
	broken       map[string]string
	// onEnsure runs, under the lock, after each install (to change the world mid-operation).
	onEnsure func(w *world, h, comp, version string)

	// unreachable: the meta cluster cannot reach the host at all (its API server gives no
	// answer, its agent takes no task).
	unreachable map[string]bool
	// downForChecks: the host's API server is not ready for this many more CheckControlPlane
	// calls (a transient fault no watch would see).
	downForChecks map[string]int
	// selfStarts: the host's API server becomes ready by itself while a heal looks at it,
	// without kok changing anything (a planned restart that finishes on its own).
	selfStarts bool

	// start is the workflow clock at the start; changes are the offsets at which the test
	// changes the world (a watch that sees nothing waits for the next one).
	start   time.Time
	changes []time.Duration
	// watching is the WatchControlPlane in flight (its params, as the started listener saw them).
	watching controlplane.WatchParams
	// activities counts every activity started, by type.
	activities map[string]int

	calls    []string // host and PKI calls in order: "m1 ensure etcd 3.6.4", "pki delete", "release"
	checks   int      // CheckControlPlane calls
	reports  []controlplane.ClusterReport
	events   []controlplane.ClusterEventParams
	children []string // child workflow types in start order
}

const clusterName = "c1"

// checkInterval is not a divisor of the minutes the tests edit at: an edit that lands on a
// health check's timer wakes the entity twice, and the second wake-up is forwarded to a child
// that has not run yet, which the test environment cannot deliver (a real server can).
const checkInterval = 7 * time.Minute

// newWorld is a Cluster on masters at target, not yet created.
func newWorld(target controlplane.Release, masters ...string) *world {
	w := &world{
		spec: controlplane.ClusterView{
			Found: true, Generation: 1, Provider: string(kokv1.ProviderProcess), TargetName: target.Name,
			MasterCount: len(masters), MasterHosts: masters, APIServerPort: 6443,
			ServiceCIDR: "10.96.0.0/12", PodCIDR: "10.244.0.0/16",
			AutoRollback: true, HealthTimeout: 20 * time.Second, CheckInterval: checkInterval,
			MaxAutoRecoveries: 3, RecoveryWindow: time.Hour,
		},
		catalogue:     map[string]controlplane.Release{},
		installed:     map[string]map[string]string{},
		down:          map[string]string{},
		broken:        map[string]string{},
		unreachable:   map[string]bool{},
		activities:    map[string]int{},
		downForChecks: map[string]int{},
	}
	for _, r := range []controlplane.Release{rel134, rel136, rel137, rel138} {
		w.catalogue[r.Name] = r
	}
	for _, h := range masters {
		w.installed[h] = map[string]string{}
	}
	return w
}

// created makes the cluster one that an earlier pass created at rel, and returns the state
// the workflow remembers of it.
func (w *world) created(rel controlplane.Release) State {
	s := State{
		Created: true, Ports: process.StandardPorts,
		Running:  map[string]map[string]string{},
		Releases: map[string]controlplane.Release{rel.Name: rel},
	}
	for _, h := range w.spec.MasterHosts {
		s.Masters = append(s.Masters, process.Master{Host: h, IP: addressOf(h)})
		s.Running[h] = releaseAll(rel)
		for comp, v := range rel.Components {
			w.installed[h][comp] = v
		}
	}
	s.Report = controlplane.ClusterReport{
		Name: clusterName, Phase: string(kokv1.ClusterRunning), Current: rel.Name, HasKubeconfig: true,
		Endpoint: Endpoint("", s.Masters, s.Ports.APIServer),
	}
	w.current = rel.Name
	return s
}

func addressOf(h string) string { return "10.0.0." + strings.TrimPrefix(h, "m") }

func (w *world) update(f func(w *world)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

// snapshot is the world as seen at one moment of workflow time.
type snapshot struct {
	calls      []string
	checks     int
	reports    []controlplane.ClusterReport
	events     []controlplane.ClusterEventParams
	children   []string
	activities map[string]int
}

func (w *world) snapshot() snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	acts := map[string]int{}
	for k, v := range w.activities {
		acts[k] = v
	}
	return snapshot{
		calls: slices.Clone(w.calls), checks: w.checks, reports: slices.Clone(w.reports),
		events: slices.Clone(w.events), children: slices.Clone(w.children), activities: acts,
	}
}

// totalActivities is every activity started.
func (s snapshot) totalActivities() int {
	n := 0
	for _, v := range s.activities {
		n += v
	}
	return n
}

func (s snapshot) last() controlplane.ClusterReport { return s.reports[len(s.reports)-1] }

// ensures are the EnsurePackage calls, "m1 ensure etcd 3.6.4".
func (s snapshot) ensures() []string {
	var out []string
	for _, c := range s.calls {
		if strings.Contains(c, " ensure ") {
			out = append(out, c)
		}
	}
	return out
}

func (s snapshot) eventReasons() []string {
	var out []string
	for _, e := range s.events {
		out = append(out, e.Reason)
	}
	return out
}

func (s snapshot) phases() []string {
	var out []string
	for _, r := range s.reports {
		out = append(out, r.Phase)
	}
	return out
}

func condOf(r controlplane.ClusterReport, typ string) controlplane.ConditionReport {
	for _, c := range r.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return controlplane.ConditionReport{}
}

// The fake activities, with the real ones' signatures.

func (w *world) ReadCluster(context.Context, controlplane.ReadClusterParams) (controlplane.ClusterView, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v := w.spec
	if !v.Found {
		return controlplane.ClusterView{}, nil
	}
	v.MasterHosts = slices.Clone(v.MasterHosts)
	if r, ok := w.catalogue[v.TargetName]; ok {
		v.Target = &r
	} else {
		v.TargetUnresolved = fmt.Sprintf("ClusterPackageVersion %s does not exist", v.TargetName)
	}
	if r, ok := w.catalogue[w.current]; ok {
		v.Current = &r
	}
	return v, nil
}

func (w *world) ReportClusterStatus(_ context.Context, r controlplane.ClusterReport) error {
	w.update(func(w *world) {
		w.reports = append(w.reports, r)
		w.current = r.Current
	})
	return nil
}

func (w *world) RecordClusterEvent(_ context.Context, e controlplane.ClusterEventParams) error {
	w.update(func(w *world) { w.events = append(w.events, e) })
	return nil
}

func (w *world) ReleaseCluster(context.Context, controlplane.ReadClusterParams) error {
	w.update(func(w *world) {
		w.calls = append(w.calls, "release")
		w.spec = controlplane.ClusterView{}
	})
	return nil
}

func (w *world) RenderMaster(_ context.Context, p controlplane.RenderMasterParams) ([]hostapi.PackageSpec, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []hostapi.PackageSpec
	for _, comp := range components {
		if rel, ok := p.Releases[comp]; ok {
			out = append(out, hostapi.PackageSpec{Name: process.PackageName(p.Cluster, comp), Version: w.catalogue[rel].Components[comp], Installer: "local"})
		}
	}
	return out, nil
}

func (w *world) CheckControlPlane(_ context.Context, p controlplane.CheckParams) (controlplane.CheckResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checks++
	for h, n := range w.downForChecks {
		if n > 0 {
			w.downForChecks[h] = n - 1
			if w.down[h] == "" {
				w.down[h] = "readyz: [-]etcd not ready yet"
				defer delete(w.down, h)
			}
		}
	}
	return w.check(p.Masters), nil
}

// check is what a check of masters sees now; the caller holds the lock.
func (w *world) check(masters []process.Master) controlplane.CheckResult {
	var res controlplane.CheckResult
	for _, m := range masters {
		v := w.installed[m.Host][KubeAPIServer]
		c := controlplane.MasterCheck{Host: m.Host}
		switch {
		case w.unreachable[m.Host]:
			c.Why, c.NoAnswer = "kube-apiserver unreachable: dial tcp: i/o timeout", true
		case v == "":
			c.Why, c.NoAnswer = "kube-apiserver unreachable: connection refused", true
		case w.down[m.Host] != "":
			c.Why = w.down[m.Host]
		case w.broken[v] != "":
			c.Why = w.broken[v]
		default:
			c.Ready, c.GitVersion = true, v
		}
		res.Masters = append(res.Masters, c)
	}
	return res
}

// WatchControlPlane answers once the watch is over: the mock call waits on the workflow clock
// (watchWait) until the world may have changed, as the real activity checks every interval.
func (w *world) WatchControlPlane(_ context.Context, p controlplane.WatchParams) (controlplane.WatchResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	res := w.check(p.Masters)
	return controlplane.WatchResult{CheckResult: res, Changed: res.Key() != p.Last.Key()}, nil
}

// watchWait is how long the watch in flight runs on the workflow clock: its confirmation when
// the world already differs from what the workflow holds, else until the next change of the
// world (confirmed), at most its bound.
func (w *world) watchWait(env *testsuite.TestWorkflowEnvironment) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.watching
	confirm := time.Duration(max(p.Confirm, 1)-1) * p.Interval
	if w.check(p.Masters).Key() != p.Last.Key() {
		return confirm
	}
	now := env.Now().Sub(w.start)
	wait := p.For
	for _, c := range w.changes {
		if c > now && c-now+confirm < wait {
			wait = c - now + confirm
		}
	}
	return wait
}

// later changes the world at workflow time d, without a signal (a fault, a partition, a restart).
func (w *world) later(env *testsuite.TestWorkflowEnvironment, d time.Duration, f func(w *world)) {
	w.changes = append(w.changes, d)
	env.RegisterDelayedCallback(func() { w.update(f) }, d)
}

func (w *world) InstallAddons(context.Context, controlplane.InstallAddonsParams) (controlplane.InstallAddonsResult, error) {
	w.update(func(w *world) { w.calls = append(w.calls, "addons") })
	return controlplane.InstallAddonsResult{}, nil
}

func (w *world) EnsureClusterPKI(context.Context, pkiacts.EnsureClusterPKIParams) (pkiacts.EnsureClusterPKIResult, error) {
	w.update(func(w *world) { w.calls = append(w.calls, "pki ensure") })
	return pkiacts.EnsureClusterPKIResult{}, nil
}

func (w *world) DeleteClusterPKI(context.Context, pkiacts.DeleteClusterPKIParams) (pkiacts.DeleteClusterPKIResult, error) {
	w.update(func(w *world) { w.calls = append(w.calls, "pki delete") })
	return pkiacts.DeleteClusterPKIResult{}, nil
}

// hostOf is the master an activity was sent to: its task queue names it.
func hostOf(ctx context.Context) string {
	return strings.TrimPrefix(activity.GetInfo(ctx).TaskQueue, queue.HostTaskQueuePrefix)
}

func (w *world) Facts(ctx context.Context) (hostapi.FactsResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := hostOf(ctx)
	if w.unreachable[h] {
		return hostapi.FactsResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
	}
	res := hostapi.FactsResult{Host: h, Address: addressOf(h)}
	for _, comp := range components {
		if v, ok := w.installed[h][comp]; ok {
			res.Installed = append(res.Installed, hostapi.InstalledPackage{Name: process.PackageName(clusterName, comp), Version: v, ServiceRunning: true})
		}
	}
	return res, nil
}

func (w *world) EnsurePackage(ctx context.Context, p hostapi.EnsurePackageParams) (hostapi.EnsurePackageResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, comp := hostOf(ctx), componentOf(clusterName, p.Spec.Name)
	w.calls = append(w.calls, fmt.Sprintf("%s ensure %s %s", h, comp, p.Spec.Version))
	prev := w.installed[h][comp]
	w.installed[h][comp] = p.Spec.Version
	restarted := false
	if comp == KubeAPIServer && w.down[h] != "" {
		switch {
		case w.restartFixes:
			delete(w.down, h)
			restarted = true // the agent restarted a stopped service: a repair
		case w.selfStarts:
			delete(w.down, h) // it came up by itself meanwhile: the agent found nothing to do
		}
	}
	if w.onEnsure != nil {
		w.onEnsure(w, h, comp, p.Spec.Version)
	}
	if restarted && prev == p.Spec.Version {
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureRepaired, Repairs: []string{"restarted stopped service"}}, nil
	}
	if prev == p.Spec.Version {
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureNone}, nil
	}
	return hostapi.EnsurePackageResult{Action: hostapi.EnsureUpgraded, PreviousVersion: prev}, nil
}

func (w *world) RemovePackage(ctx context.Context, p hostapi.RemovePackageParams) (hostapi.RemovePackageResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, comp := hostOf(ctx), componentOf(clusterName, p.Name)
	w.calls = append(w.calls, fmt.Sprintf("%s remove %s", h, comp))
	v, had := w.installed[h][comp]
	delete(w.installed[h], comp)
	return hostapi.RemovePackageResult{Changed: had, Version: v}, nil
}

// env returns a test environment with the child workflows registered under their wire names
// and every activity mocked by w.
func (w *world) env() *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(CreateWorkflow, workflow.RegisterOptions{Name: CreateWorkflowName})
	env.RegisterWorkflowWithOptions(UpgradeWorkflow, workflow.RegisterOptions{Name: UpgradeWorkflowName})
	env.RegisterWorkflowWithOptions(HealWorkflow, workflow.RegisterOptions{Name: HealWorkflowName})
	env.RegisterWorkflowWithOptions(DeleteWorkflow, workflow.RegisterOptions{Name: DeleteWorkflowName})
	env.RegisterActivity(&controlplane.Activities{})
	env.RegisterActivity(&pkiacts.Activities{})
	env.RegisterActivity(&host.Activities{})
	env.RegisterActivity(&temporalops.Activities{})
	env.OnActivity(opsActs.TerminateClusterWorkflows, mock.Anything, mock.Anything).Return(temporalops.TerminateClusterWorkflowsResult{}, nil)
	env.OnActivity(cpActs.ReadCluster, mock.Anything, mock.Anything).Return(w.ReadCluster)
	env.OnActivity(cpActs.ReportClusterStatus, mock.Anything, mock.Anything).Return(w.ReportClusterStatus)
	env.OnActivity(cpActs.RecordClusterEvent, mock.Anything, mock.Anything).Return(w.RecordClusterEvent)
	env.OnActivity(cpActs.ReleaseCluster, mock.Anything, mock.Anything).Return(w.ReleaseCluster)
	env.OnActivity(cpActs.RenderMaster, mock.Anything, mock.Anything).Return(w.RenderMaster)
	env.OnActivity(cpActs.CheckControlPlane, mock.Anything, mock.Anything).Return(w.CheckControlPlane)
	env.OnActivity(cpActs.WatchControlPlane, mock.Anything, mock.Anything).AfterFn(func() time.Duration { return w.watchWait(env) }).Return(w.WatchControlPlane)
	env.OnActivity(cpActs.InstallAddons, mock.Anything, mock.Anything).Return(w.InstallAddons)
	env.OnActivity(pkiActs.EnsureClusterPKI, mock.Anything, mock.Anything).Return(w.EnsureClusterPKI)
	env.OnActivity(pkiActs.DeleteClusterPKI, mock.Anything, mock.Anything).Return(w.DeleteClusterPKI)
	env.OnActivity(hostActs.Facts, mock.Anything).Return(w.Facts)
	env.OnActivity(hostActs.EnsurePackage, mock.Anything, mock.Anything).Return(w.EnsurePackage)
	env.OnActivity(hostActs.RemovePackage, mock.Anything, mock.Anything).Return(w.RemovePackage)
	w.start = env.Now()
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		w.update(func(w *world) { w.activities[info.ActivityType.Name]++ })
		if info.ActivityType.Name == "WatchControlPlane" {
			var p controlplane.WatchParams
			if err := args.Get(&p); err == nil {
				w.update(func(w *world) { w.watching = p })
			}
		}
	})
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		w.update(func(w *world) { w.children = append(w.children, info.WorkflowType.Name) })
	})
	return env
}

// edit changes the Cluster at workflow time d and signals reconcile, as the watcher does on
// an edit.
func (w *world) edit(env *testsuite.TestWorkflowEnvironment, d time.Duration, f func(v *controlplane.ClusterView)) {
	env.RegisterDelayedCallback(func() {
		w.update(func(w *world) { f(&w.spec) })
		env.SignalWorkflow(SignalReconcile, nil)
	}, d)
}

// at takes a snapshot at workflow time d.
func (w *world) at(env *testsuite.TestWorkflowEnvironment, d time.Duration, into *snapshot) {
	env.RegisterDelayedCallback(func() { *into = w.snapshot() }, d)
}

// run executes the entity from state s, deleting the Cluster object (gone, no finalizer) at
// workflow time end so that the workflow returns, and returns the world as it ended.
func (w *world) run(t *testing.T, env *testsuite.TestWorkflowEnvironment, s State, end time.Duration) snapshot {
	t.Helper()
	w.edit(env, end, func(v *controlplane.ClusterView) { *v = controlplane.ClusterView{} })
	env.ExecuteWorkflow(Workflow, Params{Cluster: clusterName, MetaCluster: "meta", State: s})
	require.True(t, env.IsWorkflowCompleted())
	var panicked *temporal.PanicError
	if errors.As(env.GetWorkflowError(), &panicked) {
		t.Log(panicked.StackTrace()) // where, not only that
	}
	require.NoError(t, env.GetWorkflowError())
	return w.snapshot()
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

func TestHealBudgetEscalatesToWaitingForHumanUntilResolved(t *testing.T) {
	w := newWorld(rel136, "m1")
	s := w.created(rel136)
	w.down["m1"] = "readyz: [-]etcd failed: context deadline exceeded"
	env := w.env()
	var escalated, beforeResolve snapshot
	w.at(env, 10*time.Minute, &escalated)
	w.at(env, 50*time.Minute, &beforeResolve)
	env.RegisterDelayedCallback(func() {
		// The human fixed the cause: a restart now brings the API server up.
		w.update(func(w *world) { w.restartFixes = true })
		env.SignalWorkflow(SignalResolve, nil)
	}, 51*time.Minute)
	end := w.run(t, env, s, 60*time.Minute)

	// maxAutoRecoveries heals within the window, each ensuring every component again.
	heals := []string{HealWorkflowName, HealWorkflowName, HealWorkflowName} // maxAutoRecoveries
	require.Equal(t, heals, escalated.children)
	require.Equal(t, 3, count(escalated.ensures(), "m1 ensure kube-apiserver v1.36.1"), escalated.ensures())
	// Each heal that could not make m1 healthy says so (an Event, and status until the next check).
	require.Equal(t, []string{
		kokv1.ReasonHealing, kokv1.ReasonHealFailed, kokv1.ReasonHealing, kokv1.ReasonHealFailed,
		kokv1.ReasonHealing, kokv1.ReasonHealFailed, kokv1.ReasonRecoveryLimitReached,
	}, escalated.eventReasons())
	require.Contains(t, escalated.events[1].Message, "could not recover [m1: not healthy within 20s")
	healFailed := 0
	for _, r := range escalated.reports {
		if c := condOf(r, kokv1.ConditionReady); c.Reason == kokv1.ReasonHealFailed {
			healFailed++
			require.Contains(t, c.Message, "etcd failed", "the heal's failure reaches status")
			require.True(t, condOf(r, kokv1.ConditionDegraded).Status)
		}
	}
	require.Equal(t, 3, healFailed)
	r := escalated.last()
	require.Equal(t, string(kokv1.ClusterWaitingForHuman), r.Phase)
	ready := condOf(r, "Ready")
	require.False(t, ready.Status)
	require.Equal(t, kokv1.ReasonRecoveryLimitReached, ready.Reason)
	require.Contains(t, ready.Message, "masters [m1] stay unhealthy after 3 automatic recoveries")
	require.Contains(t, ready.Message, `signal "resolve" to workflow Cluster/c1`)
	require.Contains(t, ready.Message, "kok cluster resolve")
	require.Equal(t, 3, r.RecentAutoRecoveries)
	degraded := condOf(r, kokv1.ConditionDegraded)
	require.True(t, degraded.Status, "Ready and Degraded agree: m1 is still unhealthy")
	require.Equal(t, kokv1.ReasonUnhealthy, degraded.Reason)

	// Waiting for a human: the masters are still watched, but nothing changes, so no child,
	// no host call, no report, however long it takes.
	require.Equal(t, escalated.calls, beforeResolve.calls)
	require.Equal(t, escalated.reports, beforeResolve.reports)
	require.Equal(t, escalated.children, beforeResolve.children)

	// Resolved: the budget starts again, and this heal works.
	require.Equal(t, append(heals, HealWorkflowName), end.children)
	require.Equal(t, 4, count(end.ensures(), "m1 ensure kube-apiserver v1.36.1"))
	require.Contains(t, end.eventReasons(), "MasterRecovered")
	r = end.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
	require.True(t, condOf(r, "Ready").Status)
	require.Equal(t, 1, r.RecentAutoRecoveries)
}

func TestPausedClusterIsNotCreatedUntilUnpaused(t *testing.T) {
	w := newWorld(rel136, "m1")
	w.spec.Paused = true
	env := w.env()
	var paused snapshot
	w.at(env, 9*time.Minute, &paused)
	w.edit(env, 10*time.Minute, func(v *controlplane.ClusterView) { v.Paused = false })
	end := w.run(t, env, State{}, 20*time.Minute)

	require.Empty(t, paused.children)
	require.Empty(t, paused.calls)
	require.Zero(t, paused.checks)
	require.NotEmpty(t, paused.reports)
	for _, r := range paused.reports {
		require.Equal(t, string(kokv1.ClusterPaused), r.Phase)
		require.Equal(t, "Paused", condOf(r, "Progressing").Reason)
	}

	require.Equal(t, []string{CreateWorkflowName}, end.children)
	require.Equal(t, string(kokv1.ClusterRunning), end.last().Phase)
	require.Equal(t, rel136.Name, end.last().Current)
}

func TestPausedUpgradeHoldsAtTheNextMasterAndGoesOnWhenUnpaused(t *testing.T) {
	w := newWorld(rel136, "m1", "m2")
	s := w.created(rel136)
	w.spec.Generation, w.spec.TargetName = 2, rel137.Name
	w.onEnsure = func(w *world, h, comp, _ string) {
		if h == "m1" && comp == KubeControllerManager {
			w.spec.Paused = true // set while the canary's components change
		}
	}
	env := w.env()
	var held, heldAfterSignal snapshot
	w.at(env, 5*time.Minute, &held)
	w.edit(env, 10*time.Minute, func(*controlplane.ClusterView) {}) // another edit, still paused
	w.at(env, 15*time.Minute, &heldAfterSignal)
	w.edit(env, 20*time.Minute, func(v *controlplane.ClusterView) { v.Paused = false })
	end := w.run(t, env, s, 30*time.Minute)

	// The canary finished its step; the next master did not start.
	require.Equal(t, []string{
		"m1 ensure etcd 3.6.5", "m1 ensure kube-apiserver v1.37.0", "m1 ensure kube-controller-manager v1.37.0",
		"m1 ensure kube-scheduler v1.37.0", "m1 ensure machine-operator 0.37.0",
	}, held.ensures())
	r := held.last()
	require.Equal(t, string(kokv1.ClusterPaused), r.Phase)
	require.NotNil(t, r.Operation, "the operation in flight stays recorded while paused")
	require.Equal(t, string(kokv1.ClusterOperationUpgrade), r.Operation.Type)
	require.Equal(t, "m1", r.Operation.CanaryHost)
	require.Equal(t, rel137.Name, r.Target)
	require.Equal(t, []string{UpgradeWorkflowName}, held.children)

	// A reconcile while paused reaches the child (it reads the Cluster again) and changes nothing.
	require.Equal(t, held.ensures(), heldAfterSignal.ensures())
	require.Greater(t, len(heldAfterSignal.reports), len(held.reports), "the forwarded signal made the child read and report again")
	require.Equal(t, string(kokv1.ClusterPaused), heldAfterSignal.last().Phase)

	// Unpaused: the same child goes on with m2.
	require.Equal(t, []string{UpgradeWorkflowName}, end.children)
	require.Equal(t, held.ensures(), end.ensures()[:5])
	require.Equal(t, []string{
		"m2 ensure etcd 3.6.5", "m2 ensure kube-apiserver v1.37.0", "m2 ensure kube-controller-manager v1.37.0",
		"m2 ensure kube-scheduler v1.37.0", "m2 ensure machine-operator 0.37.0",
	}, end.ensures()[5:])
	r = end.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
	require.Equal(t, rel137.Name, r.Current)
	require.Equal(t, rel136.Name, r.Previous)
}

func TestFailedUpgradeRollsBackAndIsRetriedOnlyAtANewGeneration(t *testing.T) {
	w := newWorld(rel136, "m1", "m2")
	s := w.created(rel136)
	w.spec.Generation, w.spec.TargetName = 2, rel137.Name
	w.broken["v1.37.0"] = "readyz: [-]poststarthook/start-apiextensions-controllers failed"
	env := w.env()
	var rolledBack, sameGeneration snapshot
	w.at(env, 5*time.Minute, &rolledBack)
	w.edit(env, 10*time.Minute, func(*controlplane.ClusterView) {}) // a wake-up at the same generation
	w.at(env, 15*time.Minute, &sameGeneration)
	w.edit(env, 20*time.Minute, func(v *controlplane.ClusterView) {
		// The edit that fixes the cause (an API server flag, say) changes the generation.
		v.Generation = 3
		w.broken = map[string]string{}
	})
	end := w.run(t, env, s, 30*time.Minute)

	// Canary only, stopped at the kube-apiserver that never gets ready (nothing after it is
	// started against it); it goes back to the original release; etcd is kept at the newer
	// version (its data cannot be read by the older one).
	require.Equal(t, []string{
		"m1 ensure etcd 3.6.5", "m1 ensure kube-apiserver v1.37.0",
		"m1 ensure kube-apiserver v1.36.1",
	}, rolledBack.ensures())
	require.Contains(t, rolledBack.phases(), string(kokv1.ClusterRollingBack))
	require.Equal(t, []string{"UpgradeFailed", kokv1.ReasonRolledBack}, rolledBack.eventReasons())
	r := rolledBack.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
	require.Equal(t, rel136.Name, r.Current)
	require.Empty(t, r.Target)
	ready := condOf(r, "Ready")
	require.True(t, ready.Status)
	require.Equal(t, kokv1.ReasonRolledBack, ready.Reason)
	require.Contains(t, ready.Message, "not healthy within 20s")
	require.Contains(t, ready.Message, "poststarthook/start-apiextensions-controllers failed")
	require.Equal(t, kokv1.ReasonRolledBack, condOf(r, "Progressing").Reason)

	// The same generation does not try the same target again.
	require.Equal(t, []string{UpgradeWorkflowName}, sameGeneration.children)
	require.Equal(t, rolledBack.ensures(), sameGeneration.ensures())
	require.Equal(t, kokv1.ReasonRolledBack, condOf(sameGeneration.last(), "Ready").Reason)
	require.Equal(t, string(kokv1.ClusterRunning), sameGeneration.last().Phase)

	// A new generation does; this time it works (etcd already runs the new version).
	require.Equal(t, []string{UpgradeWorkflowName, UpgradeWorkflowName}, end.children)
	require.Equal(t, []string{
		"m1 ensure kube-apiserver v1.37.0", "m1 ensure kube-controller-manager v1.37.0", "m1 ensure kube-scheduler v1.37.0",
		"m1 ensure machine-operator 0.37.0",
		"m2 ensure etcd 3.6.5", "m2 ensure kube-apiserver v1.37.0", "m2 ensure kube-controller-manager v1.37.0",
		"m2 ensure kube-scheduler v1.37.0", "m2 ensure machine-operator 0.37.0",
	}, end.ensures()[len(rolledBack.ensures()):])
	r = end.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
	require.Equal(t, rel137.Name, r.Current)
	require.Equal(t, "Running", condOf(r, "Ready").Reason)
}

func TestUnsupportedVersionSkewIsReportedAndRunsNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target controlplane.Release
		why    string
	}{
		{"two minor versions up", rel138, "v1.36.1 -> v1.38.0 skips a minor version: upgrade one minor version at a time"},
		{"two minor versions down", rel134, "v1.36.1 -> v1.34.2 rolls back more than one minor version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(rel136, "m1")
			s := w.created(rel136)
			w.spec.Generation, w.spec.TargetName = 2, tc.target.Name
			end := w.run(t, w.env(), s, 10*time.Minute)

			require.Empty(t, end.children)
			require.Empty(t, end.calls)
			r := end.last()
			require.Equal(t, string(kokv1.ClusterRunning), r.Phase)
			require.Equal(t, rel136.Name, r.Current)
			require.Empty(t, r.Target)
			ready := condOf(r, "Ready")
			require.True(t, ready.Status)
			require.Equal(t, kokv1.ReasonUnsupportedVersionSkew, ready.Reason)
			require.Equal(t, "still at "+rel136.Name+": "+tc.why, ready.Message)
			require.Equal(t, int64(2), r.ObservedGeneration)
		})
	}
}

func TestDeletionPolicy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		orphan   bool
		children []string
		calls    []string
	}{
		{name: "Orphan leaves the control plane running", orphan: true, calls: []string{"release"}},
		{
			name: "Delete tears it down, then releases", children: []string{DeleteWorkflowName},
			calls: []string{
				"m1 remove machine-operator", "m1 remove kube-scheduler", "m1 remove kube-controller-manager", "m1 remove kube-apiserver", "m1 remove etcd",
				"m2 remove machine-operator", "m2 remove kube-scheduler", "m2 remove kube-controller-manager", "m2 remove kube-apiserver", "m2 remove etcd",
				"pki delete", "release",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(rel136, "m1", "m2")
			s := w.created(rel136)
			env := w.env()
			w.edit(env, time.Minute, func(v *controlplane.ClusterView) { v.Deleting, v.Orphan = true, tc.orphan })
			env.ExecuteWorkflow(Workflow, Params{Cluster: clusterName, MetaCluster: "meta", State: s})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			end := w.snapshot()
			require.Equal(t, tc.children, end.children)
			require.Equal(t, tc.calls, end.calls)
		})
	}
}

func TestDeletedWhileCreatingTearsDownWhatWasInstalled(t *testing.T) {
	w := newWorld(rel136, "m1")
	w.onEnsure = func(w *world, _, comp, _ string) {
		if comp == KubeAPIServer {
			w.spec.Deleting = true // deleted while create runs: it stops at its next step
		}
	}
	env := w.env()
	env.ExecuteWorkflow(Workflow, Params{Cluster: clusterName, MetaCluster: "meta"})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	end := w.snapshot()

	require.Equal(t, []string{"pki ensure", "m1 ensure etcd 3.6.4", "m1 ensure kube-apiserver v1.36.1"}, end.calls[:3])
	require.Equal(t, CreateWorkflowName, end.children[0])
	require.Equal(t, []string{
		"m1 remove machine-operator", "m1 remove kube-scheduler", "m1 remove kube-controller-manager", "m1 remove kube-apiserver", "m1 remove etcd",
		"pki delete", "release",
	}, end.calls[3:], "etcd and kube-apiserver run on m1 and the PKI Secrets exist: a deletion must not leave them behind")
}

func TestTargetEditedWhileCreatingIsUpgradedTo(t *testing.T) {
	w := newWorld(rel136, "m1")
	w.onEnsure = func(w *world, _, comp, _ string) {
		if comp == KubeControllerManager {
			w.spec.Generation, w.spec.TargetName = 2, rel137.Name // edited while create runs
		}
	}
	end := w.run(t, w.env(), State{}, 30*time.Minute)

	require.Equal(t, []string{CreateWorkflowName, UpgradeWorkflowName}, end.children)
	r := end.last()
	require.Equal(t, string(kokv1.ClusterRunning), r.Phase, "conditions: %+v", r.Conditions)
	require.Equal(t, rel137.Name, r.Current)
}

func TestHealthIsStillWatchedWhileTheSpecCannotBeCarriedOut(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target controlplane.Release
		reason string
	}{
		{"after a rolled-back upgrade", rel137, kokv1.ReasonRolledBack},
		{"while a version skew is refused", rel138, kokv1.ReasonUnsupportedVersionSkew},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(rel136, "m1")
			s := w.created(rel136)
			w.spec.Generation, w.spec.TargetName = 2, tc.target.Name
			w.broken["v1.37.0"] = "readyz: [-]etcd failed"
			w.restartFixes = true
			env := w.env()
			var before snapshot
			w.at(env, 10*time.Minute, &before)
			// m1's API server dies; nobody edits the Cluster.
			w.later(env, 11*time.Minute, func(w *world) { w.down["m1"] = "readyz: [-]etcd failed" })
			end := w.run(t, env, s, 11*time.Minute+3*checkInterval)

			require.Equal(t, tc.reason, condOf(before.last(), "Ready").Reason)
			require.NotContains(t, before.children, HealWorkflowName)
			require.Contains(t, end.children, HealWorkflowName, "a master that died is healed")
		})
	}
}

func TestAResolveSentWhileNotWaitingDoesNotLiftALaterEscalation(t *testing.T) {
	w := newWorld(rel136, "m1")
	s := w.created(rel136)
	w.down["m1"] = "readyz: [-]etcd failed"
	env := w.env()
	env.RegisterDelayedCallback(func() {
		w.update(func(w *world) { w.restartFixes = true })
		env.SignalWorkflow(SignalResolve, nil)
	}, 51*time.Minute)
	// The human sends resolve once more; the cluster is Running by then.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalResolve, nil) }, 52*time.Minute)
	// Hours later m1 fails again, for a cause a restart does not fix.
	w.later(env, 3*time.Hour, func(w *world) { w.restartFixes, w.down["m1"] = false, "readyz: [-]etcd failed" })
	end := w.run(t, env, s, 4*time.Hour)

	require.Len(t, end.children, 3+1+3, "3 heals, resolve, 1 heal that works; later 3 heals and a wait for a human: %v", end.children)
	require.Equal(t, string(kokv1.ClusterWaitingForHuman), end.last().Phase)
}

func TestAFailedCreateIsRetriedOnTheNextEdit(t *testing.T) {
	w := newWorld(rel136, "m1")
	w.broken["v1.36.1"] = "readyz: [-]etcd failed" // a bad flag override, say
	env := w.env()
	var failed snapshot
	w.at(env, 9*time.Minute, &failed)
	w.edit(env, 10*time.Minute, func(v *controlplane.ClusterView) {
		v.Generation = 2 // the fix
		w.broken = map[string]string{}
	})
	end := w.run(t, env, State{}, 20*time.Minute)

	require.Equal(t, string(kokv1.ClusterFailed), failed.last().Phase)
	require.Contains(t, condOf(failed.last(), "Ready").Message, "Create failed")
	require.Equal(t, []string{CreateWorkflowName, CreateWorkflowName}, end.children, "the edit is the retry")
	require.Equal(t, string(kokv1.ClusterRunning), end.last().Phase)
}
