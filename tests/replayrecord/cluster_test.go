package replayrecord

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"kok.dev/activities/controlplane"
	pkiacts "kok.dev/activities/pki"
	hosted "kok.dev/activities/provider/kok"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/contract/queue"
	"kok.dev/workflows/cluster"
)

const clusterTestdata = "../../workflows/cluster/testdata"

// The catalogue: a kube-apiserver's version is its Kubernetes version, so the fake health
// check says which version a master serves from what is installed on it.
var (
	rel136 = release("k8s-1.36.1", "v1.36.1", "3.6.4", "0.36.0")
	rel137 = release("k8s-1.37.0", "v1.37.0", "3.6.5", "0.37.0")
)

func release(name, kube, etcd, operator string) controlplane.Release {
	return controlplane.Release{Name: name, KubernetesVersion: kube, Components: map[string]string{
		cluster.Etcd: etcd, cluster.KubeAPIServer: kube, cluster.KubeControllerManager: kube, cluster.KubeScheduler: kube, cluster.MachineOperator: operator,
	}}
}

var componentOrder = []string{cluster.Etcd, cluster.KubeAPIServer, cluster.KubeControllerManager, cluster.KubeScheduler, cluster.MachineOperator}

// clusterWorld is one Cluster, its meta cluster and its master hosts as the fake activities see
// them: the status is what the workflow last reported, the masters run what it installed.
type clusterWorld struct {
	mu        sync.Mutex
	name      string
	spec      controlplane.ClusterView
	catalogue map[string]controlplane.Release
	current   string
	installed map[string]map[string]string // host -> component -> version
	down      map[string]string            // host -> why its kube-apiserver is not ready
	broken    map[string]string            // kube-apiserver version (or hosted release) -> why it never gets ready
	hostedAt  string                       // the release the hosted workloads run
	reports   []controlplane.ClusterReport
	events    []controlplane.ClusterEventParams
	released  bool
}

func newClusterWorld(name string, provider kokv1.ClusterProvider, target controlplane.Release, masters ...string) *clusterWorld {
	w := &clusterWorld{
		name: name,
		spec: controlplane.ClusterView{
			Found: true, Generation: 1, Provider: string(provider), TargetName: target.Name,
			MasterCount: len(masters), MasterHosts: masters, APIServerPort: 6443,
			ServiceCIDR: "10.96.0.0/12", PodCIDR: "10.244.0.0/16",
			// The health timeout is short: a path that waits for a master that never gets
			// ready gives up after one poll (pollEvery, 2s of real time).
			AutoRollback: true, HealthTimeout: time.Second, CheckInterval: time.Hour,
			MaxAutoRecoveries: 1, RecoveryWindow: time.Hour,
		},
		catalogue: map[string]controlplane.Release{rel136.Name: rel136, rel137.Name: rel137},
		installed: map[string]map[string]string{},
		down:      map[string]string{},
		broken:    map[string]string{},
	}
	if provider == kokv1.ProviderKok {
		w.spec.MasterCount = 1
	}
	for _, h := range masters {
		w.installed[h] = map[string]string{}
	}
	return w
}

// addressOf is a master's address: 10.0.0.<n> for a host named ...m<n>.
func addressOf(h string) string { return "10.0.0." + h[strings.LastIndex(h, "m")+1:] }

// created makes the cluster one that an earlier run created at rel, and returns the state the
// entity remembers of it (an entity started with it goes straight to its health check).
func (w *clusterWorld) created(rel controlplane.Release) cluster.State {
	s := cluster.State{
		Created: true, Ports: process.StandardPorts,
		Running:  map[string]map[string]string{},
		Releases: map[string]controlplane.Release{rel.Name: rel},
	}
	for _, h := range w.spec.MasterHosts {
		s.Masters = append(s.Masters, process.Master{Host: h, IP: addressOf(h)})
		s.Running[h] = map[string]string{}
		for comp, v := range rel.Components {
			s.Running[h][comp] = rel.Name
			w.installed[h][comp] = v
		}
	}
	s.Report = controlplane.ClusterReport{
		Name: w.name, Phase: string(kokv1.ClusterRunning), Current: rel.Name, HasKubeconfig: true,
		Endpoint: cluster.Endpoint("", s.Masters, s.Ports.APIServer),
	}
	w.current = rel.Name
	return s
}

func (w *clusterWorld) update(f func(w *clusterWorld)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

func (w *clusterWorld) holds(ok func(w *clusterWorld) bool) func() bool {
	return func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return ok(w)
	}
}

func (w *clusterWorld) last() controlplane.ClusterReport {
	if len(w.reports) == 0 {
		return controlplane.ClusterReport{}
	}
	return w.reports[len(w.reports)-1]
}

func (w *clusterWorld) condition(typ string) controlplane.ConditionReport {
	for _, c := range w.last().Conditions {
		if c.Type == typ {
			return c
		}
	}
	return controlplane.ConditionReport{}
}

func (w *clusterWorld) hasEvent(reason string) bool {
	return slices.ContainsFunc(w.events, func(e controlplane.ClusterEventParams) bool { return e.Reason == reason })
}

// start serves the meta activities on the meta cluster's queue and each master's host
// activities on its host queue.
func (w *clusterWorld) start(s *server, meta string) {
	s.activities(queue.ClusterTaskQueue(meta), map[string]any{
		"ReadCluster": w.ReadCluster, "ReportClusterStatus": w.ReportClusterStatus, "RecordClusterEvent": w.RecordClusterEvent,
		"ReleaseCluster": w.ReleaseCluster, "RenderMaster": w.RenderMaster, "CheckControlPlane": w.CheckControlPlane,
		"InstallAddons": w.InstallAddons, "EnsureClusterPKI": w.EnsureClusterPKI, "DeleteClusterPKI": w.DeleteClusterPKI,
		"EnsureControlPlane": w.EnsureControlPlane, "ControlPlaneStatus": w.ControlPlaneStatus, "DeleteControlPlane": w.DeleteControlPlane,
	})
	for _, h := range w.spec.MasterHosts {
		s.activities(queue.HostTaskQueue(h), map[string]any{
			"Facts": w.Facts, "EnsurePackage": w.EnsurePackage, "RemovePackage": w.RemovePackage,
		})
	}
}

func (w *clusterWorld) ReadCluster(context.Context, controlplane.ReadClusterParams) (controlplane.ClusterView, error) {
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

func (w *clusterWorld) ReportClusterStatus(_ context.Context, r controlplane.ClusterReport) error {
	w.update(func(w *clusterWorld) {
		w.reports = append(w.reports, r)
		w.current = r.Current
	})
	return nil
}

func (w *clusterWorld) RecordClusterEvent(_ context.Context, e controlplane.ClusterEventParams) error {
	w.update(func(w *clusterWorld) { w.events = append(w.events, e) })
	return nil
}

func (w *clusterWorld) ReleaseCluster(context.Context, controlplane.ReadClusterParams) error {
	w.update(func(w *clusterWorld) {
		w.released = true
		w.spec = controlplane.ClusterView{}
	})
	return nil
}

func (w *clusterWorld) RenderMaster(_ context.Context, p controlplane.RenderMasterParams) ([]hostapi.PackageSpec, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []hostapi.PackageSpec
	for _, comp := range componentOrder {
		if rel, ok := p.Releases[comp]; ok {
			out = append(out, hostapi.PackageSpec{Name: process.PackageName(p.Cluster, comp), Version: w.catalogue[rel].Components[comp], Installer: "local"})
		}
	}
	return out, nil
}

func (w *clusterWorld) CheckControlPlane(_ context.Context, p controlplane.CheckParams) (controlplane.CheckResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var res controlplane.CheckResult
	for _, m := range p.Masters {
		v := w.installed[m.Host][cluster.KubeAPIServer]
		c := controlplane.MasterCheck{Host: m.Host}
		switch {
		case v == "":
			c.Why = "connection refused"
		case w.down[m.Host] != "":
			c.Why = w.down[m.Host]
		case w.broken[v] != "":
			c.Why = w.broken[v]
		default:
			c.Ready, c.GitVersion = true, v
		}
		res.Masters = append(res.Masters, c)
	}
	return res, nil
}

func (w *clusterWorld) InstallAddons(context.Context, controlplane.InstallAddonsParams) (controlplane.InstallAddonsResult, error) {
	return controlplane.InstallAddonsResult{}, nil
}

func (w *clusterWorld) EnsureClusterPKI(context.Context, pkiacts.EnsureClusterPKIParams) (pkiacts.EnsureClusterPKIResult, error) {
	return pkiacts.EnsureClusterPKIResult{}, nil
}

func (w *clusterWorld) DeleteClusterPKI(context.Context, pkiacts.DeleteClusterPKIParams) (pkiacts.DeleteClusterPKIResult, error) {
	return pkiacts.DeleteClusterPKIResult{}, nil
}

func (w *clusterWorld) EnsureControlPlane(_ context.Context, p hosted.EnsureParams) (hosted.EnsureResult, error) {
	w.update(func(w *clusterWorld) { w.hostedAt = p.PackageVersion })
	return hosted.EnsureResult{}, nil
}

func (w *clusterWorld) ControlPlaneStatus(_ context.Context, p hosted.StatusParams) (hosted.Status, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := hosted.Status{Cluster: p.Cluster, Namespace: pkiacts.Namespace(p.Cluster), PackageVersion: w.hostedAt}
	rel := w.catalogue[w.hostedAt]
	for _, comp := range componentOrder {
		st.Components = append(st.Components, hosted.ComponentStatus{
			Name: kokv1.ControlPlaneComponentName(comp), Object: "Deployment/" + p.Cluster + "-" + comp,
			DesiredReplicas: 1, ReadyReplicas: 1, UpdatedReplicas: 1, TargetPackageVersion: w.hostedAt, Version: rel.Components[comp], Ready: true,
		})
	}
	switch {
	case w.broken[w.hostedAt] != "":
		st.Message = w.broken[w.hostedAt]
		st.Components[1].Ready, st.Components[1].ReadyReplicas, st.Components[1].Message = false, 0, w.broken[w.hostedAt]
	case p.PackageVersion != "" && p.PackageVersion != w.hostedAt:
		st.Message = "rolling out " + p.PackageVersion
	default:
		st.Ready = true
	}
	return st, nil
}

func (w *clusterWorld) DeleteControlPlane(context.Context, hosted.DeleteParams) (hosted.DeleteResult, error) {
	w.update(func(w *clusterWorld) { w.hostedAt = "" })
	return hosted.DeleteResult{}, nil
}

// hostOf is the master an activity was sent to: its task queue names it.
func hostOf(ctx context.Context) string {
	return strings.TrimPrefix(activity.GetInfo(ctx).TaskQueue, queue.HostTaskQueuePrefix)
}

func (w *clusterWorld) componentOf(pkg string) string {
	return strings.TrimPrefix(pkg, process.PackageName(w.name, ""))
}

func (w *clusterWorld) Facts(ctx context.Context) (hostapi.FactsResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h := hostOf(ctx)
	res := hostapi.FactsResult{Host: h, Address: addressOf(h)}
	for _, comp := range componentOrder {
		if v, ok := w.installed[h][comp]; ok {
			res.Installed = append(res.Installed, hostapi.InstalledPackage{Name: process.PackageName(w.name, comp), Version: v, ServiceRunning: true})
		}
	}
	return res, nil
}

func (w *clusterWorld) EnsurePackage(ctx context.Context, p hostapi.EnsurePackageParams) (hostapi.EnsurePackageResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, comp := hostOf(ctx), w.componentOf(p.Spec.Name)
	prev := w.installed[h][comp]
	w.installed[h][comp] = p.Spec.Version
	if prev == p.Spec.Version {
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureNone}, nil
	}
	return hostapi.EnsurePackageResult{Action: hostapi.EnsureUpgraded, PreviousVersion: prev}, nil
}

func (w *clusterWorld) RemovePackage(ctx context.Context, p hostapi.RemovePackageParams) (hostapi.RemovePackageResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	h, comp := hostOf(ctx), w.componentOf(p.Name)
	v, had := w.installed[h][comp]
	delete(w.installed[h], comp)
	return hostapi.RemovePackageResult{Changed: had, Version: v}, nil
}

// clusterRun is one recorded Cluster entity workflow.
type clusterRun struct {
	t   *testing.T
	s   *server
	w   *clusterWorld
	id  string
	run client.WorkflowRun
}

func startCluster(t *testing.T, s *server, w *clusterWorld, state cluster.State) *clusterRun {
	t.Helper()
	meta := "meta-" + w.name
	w.start(s, meta)
	id := cluster.WorkflowID(w.name)
	run, err := s.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: queue.ControlTaskQueue},
		cluster.WorkflowName, cluster.Params{Cluster: w.name, MetaCluster: meta, State: state})
	require.NoError(t, err)
	return &clusterRun{t: t, s: s, w: w, id: id, run: run}
}

func (c *clusterRun) waitFor(what string, ok func(w *clusterWorld) bool) {
	c.t.Helper()
	eventually(c.t, what, c.w.holds(ok))
}

// edit changes the Cluster and signals reconcile, as the watcher does on an edit.
func (c *clusterRun) edit(f func(v *controlplane.ClusterView)) {
	c.t.Helper()
	c.w.update(func(w *clusterWorld) { f(&w.spec) })
	c.signal(cluster.SignalReconcile)
}

func (c *clusterRun) signal(name string) {
	c.t.Helper()
	require.NoError(c.t, c.s.c.SignalWorkflow(context.Background(), c.id, "", name, nil))
}

// gone deletes the Cluster object without a finalizer, and waits for the workflow to return.
func (c *clusterRun) gone() {
	c.t.Helper()
	c.edit(func(v *controlplane.ClusterView) { *v = controlplane.ClusterView{} })
	c.finish()
}

func (c *clusterRun) finish() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(c.t, c.s.c.GetWorkflow(ctx, c.id, "").Get(ctx, nil))
}

// save writes the entity's history as <name>.Cluster.json and each child's beside it.
func (c *clusterRun) save(name string) {
	c.t.Helper()
	h := c.s.history(c.t, c.id, c.run.GetRunID())
	write(c.t, clusterTestdata, name+"."+cluster.WorkflowName, h)
	c.s.recordChildren(c.t, clusterTestdata, name, h)
}

func running(w *clusterWorld) bool {
	return w.last().Phase == string(kokv1.ClusterRunning) && w.condition("Progressing").Reason == "Idle"
}

func TestRecordCluster(t *testing.T) {
	skipUnlessRecording(t)
	s := newServer(t, 0)

	// Create on two masters, upgrade (canary first), delete with the finalizer.
	t.Run("create-upgrade-delete", func(t *testing.T) {
		t.Parallel()
		w := newClusterWorld("life", kokv1.ProviderProcess, rel136, "life-m1", "life-m2")
		c := startCluster(t, s, w, cluster.State{})
		c.waitFor("created", func(w *clusterWorld) bool { return running(w) && w.last().Current == rel136.Name })
		c.edit(func(v *controlplane.ClusterView) { v.TargetName, v.Generation = rel137.Name, 2 })
		c.waitFor("upgraded", func(w *clusterWorld) bool { return running(w) && w.last().Current == rel137.Name })
		c.edit(func(v *controlplane.ClusterView) { v.Deleting = true })
		c.finish()
		require.True(t, w.holds(func(w *clusterWorld) bool { return w.released })())
		c.save("create-upgrade-delete")
	})

	// An upgrade whose canary never gets healthy: the canary is rolled back, the status says
	// so, and the failed target is not tried again at this generation.
	t.Run("upgrade-rollback", func(t *testing.T) {
		t.Parallel()
		w := newClusterWorld("rb", kokv1.ProviderProcess, rel136, "rb-m1", "rb-m2")
		st := w.created(rel136)
		w.broken[rel137.KubernetesVersion] = "readyz: [-]poststarthook/bootstrap failed"
		c := startCluster(t, s, w, st)
		c.waitFor("healthy", running)
		c.edit(func(v *controlplane.ClusterView) { v.TargetName, v.Generation = rel137.Name, 2 })
		c.waitFor("rolled back", func(w *clusterWorld) bool {
			return w.hasEvent(kokv1.ReasonRolledBack) && w.condition("Ready").Reason == kokv1.ReasonRolledBack
		})
		c.gone()
		c.save("upgrade-rollback")
	})

	// A master that stays unhealthy: one automatic heal (the budget), then WaitingForHuman
	// until a human fixes it and signals resolve.
	t.Run("heal-escalate-resolve", func(t *testing.T) {
		t.Parallel()
		w := newClusterWorld("heal", kokv1.ProviderProcess, rel136, "heal-m1")
		st := w.created(rel136)
		w.down["heal-m1"] = "readyz: [-]etcd failed: context deadline exceeded"
		c := startCluster(t, s, w, st)
		c.waitFor("waiting for a human", func(w *clusterWorld) bool { return w.last().Phase == string(kokv1.ClusterWaitingForHuman) })
		w.update(func(w *clusterWorld) { delete(w.down, "heal-m1") })
		c.signal(cluster.SignalResolve)
		c.waitFor("healthy after resolve", running)
		c.gone()
		c.save("heal-escalate-resolve")
	})

	// Provider kok: create, upgrade, an upgrade that rolls back, delete.
	t.Run("hosted", func(t *testing.T) {
		t.Parallel()
		w := newClusterWorld("hosted", kokv1.ProviderKok, rel136)
		c := startCluster(t, s, w, cluster.State{})
		c.waitFor("created", func(w *clusterWorld) bool { return running(w) && w.last().Current == rel136.Name })
		c.edit(func(v *controlplane.ClusterView) { v.TargetName, v.Generation = rel137.Name, 2 })
		c.waitFor("upgraded", func(w *clusterWorld) bool { return running(w) && w.last().Current == rel137.Name })
		w.update(func(w *clusterWorld) {
			w.catalogue["k8s-1.37.1"] = release("k8s-1.37.1", "v1.37.1", "3.6.5", "0.37.1")
			w.broken["k8s-1.37.1"] = "kube-apiserver: 0 of 1 replicas ready"
		})
		c.edit(func(v *controlplane.ClusterView) { v.TargetName, v.Generation = "k8s-1.37.1", 3 })
		c.waitFor("rolled back", func(w *clusterWorld) bool {
			return w.hasEvent(kokv1.ReasonRolledBack) && w.last().Phase == string(kokv1.ClusterRunning)
		})
		c.edit(func(v *controlplane.ClusterView) { v.Deleting = true })
		c.finish()
		c.save("hosted")
	})
}

// TestRecordClusterContinueAsNew runs on a server that suggests continue-as-new after a few
// dozen events: the entity's second health pass ends the run, the next run starts from the
// carried State and rests.
func TestRecordClusterContinueAsNew(t *testing.T) {
	skipUnlessRecording(t)
	s := newServer(t, 50)
	w := newClusterWorld("can", kokv1.ProviderProcess, rel136, "can-m1")
	c := startCluster(t, s, w, w.created(rel136))
	c.waitFor("healthy", running)
	n := 0
	w.update(func(w *clusterWorld) { n = len(w.reports) })
	c.signal(cluster.SignalReconcile)
	var next string
	eventually(t, "continued as new", func() bool {
		d, err := s.c.DescribeWorkflowExecution(context.Background(), c.id, "")
		next = d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		return err == nil && next != c.run.GetRunID()
	})
	c.waitFor("the next run's first pass", func(w *clusterWorld) bool { return len(w.reports) > n+1 && running(w) })
	c.gone()
	write(t, clusterTestdata, "continue-as-new.Cluster", s.history(t, c.id, c.run.GetRunID()))
	write(t, clusterTestdata, "continue-as-new.Cluster-2", s.history(t, c.id, next))
}
