package cluster

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/host"
	hosted "kok.dev/activities/provider/kok"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
)

// Timeouts and retries, each named for why it is what it is.
var (
	// metaRetry: meta-cluster calls are short and retried for as long as it takes (a manager
	// restart, an API server blip); the pending activity shows in the Web UI meanwhile.
	metaRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 15 * time.Second}
	// installTimeout bounds one component's install or upgrade on a master, health check
	// included; the agent heartbeats, so a killed agent is noticed after installHeartbeat.
	installTimeout   = 10 * time.Minute
	installHeartbeat = time.Minute
	// hostRetry: a host call is retried a few times (an agent restart), never forever: a
	// master that cannot install is a failed step the operation must handle.
	hostRetry = &temporal.RetryPolicy{
		InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 4,
		NonRetryableErrorTypes: []string{hostapi.ErrTypeBadSpec, hostapi.ErrTypeChecksumMismatch, hostapi.ErrTypeInstallFailed, hostapi.ErrTypeNotInstalled},
	}
	// agentScheduleToStart: a host task not picked up within this is an agent that is down.
	agentScheduleToStart = 2 * time.Minute
	// pollEvery is how often a health gate looks again.
	pollEvery = 2 * time.Second
	// maxPasses: continue-as-new after this many entity passes.
	maxPasses = 200
)

var (
	cpActs   *controlplane.Activities
	hostActs *host.Activities
)

// op is what every step of every operation needs: the contexts to call with, the cluster, its
// state and the status report the steps keep current.
type op struct {
	cluster string
	meta    string
	s       *State
	// view is the last read of the Cluster.
	view controlplane.ClusterView
	// reconcile delivers the entity's (or, in a child, the forwarded) reconcile signals.
	reconcile workflow.ReceiveChannel
	// atRest: the entity runs at ChangeAtRest (see rest.go); false replays older runs as they ran.
	atRest bool
	// workloads is provider kok's control plane as the entity's last look saw it (nil: look).
	workloads *hosted.Status
	// retrySoon: an operation did not start (a master was unhealthy when it looked); the
	// health pass after it waits one check interval, not a whole watch, before trying again.
	retrySoon bool
}

func (o *op) metaCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: queue.ClusterTaskQueue(o.meta), StartToCloseTimeout: time.Minute, RetryPolicy: metaRetry,
	})
}

func hostCtx(ctx workflow.Context, h string, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: queue.HostTaskQueue(h), ScheduleToStartTimeout: agentScheduleToStart,
		StartToCloseTimeout: timeout, HeartbeatTimeout: installHeartbeat, RetryPolicy: hostRetry,
	})
}

// read reads the Cluster and caches its releases.
func (o *op) read(ctx workflow.Context) error {
	var v controlplane.ClusterView
	if err := workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.ReadCluster, controlplane.ReadClusterParams{Name: o.cluster}).Get(ctx, &v); err != nil {
		return err
	}
	o.view = v
	if o.s.Releases == nil {
		o.s.Releases = map[string]controlplane.Release{}
	}
	for _, r := range []*controlplane.Release{v.Target, v.Current} {
		if r != nil && r.Components != nil {
			o.s.Releases[r.Name] = *r
		}
	}
	return nil
}

// report writes the status: phase, the operation (nil: none), and conditions.
func (o *op) report(ctx workflow.Context, phase kokv1.ClusterPhase, operation *controlplane.OperationReport, conds ...controlplane.ConditionReport) error {
	r := &o.s.Report
	r.Name = o.cluster
	r.Now = workflow.Now(ctx)
	r.Phase = string(phase)
	r.Operation = operation
	if o.view.Generation > r.ObservedGeneration {
		r.ObservedGeneration = o.view.Generation
	}
	r.Conditions = conds
	r.RecentAutoRecoveries = len(RecoveriesWithin(r.Now, o.s.Recoveries, o.view.RecoveryWindow))
	return workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.ReportClusterStatus, *r).Get(ctx, nil)
}

// event records an Event on the Cluster; failing to is not a reason to stop.
func (o *op) event(ctx workflow.Context, warning bool, reason, format string, args ...any) {
	_ = workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.RecordClusterEvent, controlplane.ClusterEventParams{
		Name: o.cluster, Warning: warning, Reason: reason, Message: fmt.Sprintf(format, args...), Now: workflow.Now(ctx),
	}).Get(ctx, nil)
}

// render returns one master's packages as Running says it runs them.
func (o *op) render(ctx workflow.Context, h string) (map[string]hostapi.PackageSpec, error) {
	return o.renderFor(ctx, h, o.s.Running[h])
}

// renderFor returns one master's packages with each component at the release given. A
// component's package depends on its own release only, so one render at the releases a master
// moves to serves every step of the move.
func (o *op) renderFor(ctx workflow.Context, h string, releases map[string]string) (map[string]hostapi.PackageSpec, error) {
	var specs []hostapi.PackageSpec
	err := workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.RenderMaster, controlplane.RenderMasterParams{
		Cluster: o.cluster, Masters: o.s.Masters, Host: h, Releases: releases, Ports: o.s.Ports,
	}).Get(ctx, &specs)
	if err != nil {
		return nil, err
	}
	out := map[string]hostapi.PackageSpec{}
	for _, sp := range specs {
		out[componentOf(o.cluster, sp.Name)] = sp
	}
	return out, nil
}

func componentOf(cluster, pkg string) string {
	return pkg[len(process.PackageName(cluster, "")):]
}

// ensure installs (or upgrades, or repairs) one component on one master.
func (o *op) ensure(ctx workflow.Context, h string, spec hostapi.PackageSpec) workflow.Future {
	return workflow.ExecuteActivity(hostCtx(ctx, h, installTimeout), hostActs.EnsurePackage, hostapi.EnsurePackageParams{Spec: spec})
}

// ensureOnAll runs comp on every master at once (etcd members of a new cluster must start
// together to form their quorum) and returns the first failure.
func (o *op) ensureOnAll(ctx workflow.Context, comp string, specs map[string]map[string]hostapi.PackageSpec) error {
	var futures []workflow.Future
	var hosts []string
	for _, m := range o.s.Masters {
		sp, ok := specs[m.Host][comp]
		if !ok {
			continue
		}
		futures = append(futures, o.ensure(ctx, m.Host, sp))
		hosts = append(hosts, m.Host)
	}
	var errs []error
	for i, f := range futures {
		if err := f.Get(ctx, nil); err != nil {
			errs = append(errs, fmt.Errorf("%s on %s: %w", comp, hosts[i], err))
		}
	}
	return errors.Join(errs...)
}

// check asks every master's kube-apiserver how it is.
func (o *op) check(ctx workflow.Context, masters []process.Master) (map[string]controlplane.MasterCheck, error) {
	var res controlplane.CheckResult
	if err := workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.CheckControlPlane, controlplane.CheckParams{
		Cluster: o.cluster, Masters: masters, Port: o.s.Ports.APIServer,
	}).Get(ctx, &res); err != nil {
		return nil, err
	}
	out := map[string]controlplane.MasterCheck{}
	for _, c := range res.Masters {
		out[c.Host] = c
	}
	return out, nil
}

// facts asks each master's agent what it runs; a master whose agent does not answer is
// reported as such, not as an error.
func (o *op) facts(ctx workflow.Context) map[string]*hostapi.FactsResult {
	futures := map[string]workflow.Future{}
	for _, m := range o.s.Masters {
		c := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue: queue.HostTaskQueue(m.Host), ScheduleToStartTimeout: 30 * time.Second,
			StartToCloseTimeout: 30 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		futures[m.Host] = workflow.ExecuteActivity(c, hostActs.Facts)
	}
	out := map[string]*hostapi.FactsResult{}
	for _, m := range o.s.Masters {
		var f hostapi.FactsResult
		if futures[m.Host].Get(ctx, &f) == nil {
			out[m.Host] = &f
		}
	}
	return out
}

// waitReady polls masters until each kube-apiserver is ready at gitVersion (any version when
// empty), or timeout passes; the error says which master failed and how.
func (o *op) waitReady(ctx workflow.Context, masters []process.Master, gitVersion string, timeout time.Duration) error {
	deadline := workflow.Now(ctx).Add(timeout)
	for {
		checks, err := o.check(ctx, masters)
		if err != nil {
			return err
		}
		var why []string
		for _, m := range masters {
			c := checks[m.Host]
			switch {
			case !c.Ready:
				why = append(why, fmt.Sprintf("%s: %s", m.Host, c.Why))
			case gitVersion != "" && c.GitVersion != gitVersion:
				why = append(why, fmt.Sprintf("%s: kube-apiserver is at %s, not %s", m.Host, c.GitVersion, gitVersion))
			}
		}
		if len(why) == 0 {
			return nil
		}
		if !workflow.Now(ctx).Before(deadline) {
			return fmt.Errorf("not healthy within %s: %v", timeout, why)
		}
		if err := workflow.Sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// masterReports builds status.masters from Running, checks and facts (see masterReports).
func (o *op) masterReports(checks map[string]controlplane.MasterCheck, facts map[string]*hostapi.FactsResult, phase map[string]kokv1.MasterPhase) []controlplane.MasterReport {
	return masterReports(o.cluster, o.s.Masters, o.s.Running, o.s.Releases, checks, facts, phase)
}

// Endpoint is the cluster's API URL: the control-plane endpoint when one is declared (a bare
// host gets the API server port), else the first master.
func Endpoint(controlPlaneEndpoint string, masters []process.Master, port int) string {
	if controlPlaneEndpoint != "" {
		if _, _, err := net.SplitHostPort(controlPlaneEndpoint); err == nil {
			return "https://" + controlPlaneEndpoint
		}
		return "https://" + net.JoinHostPort(controlPlaneEndpoint, strconv.Itoa(port))
	}
	if len(masters) == 0 {
		return ""
	}
	return "https://" + net.JoinHostPort(masters[0].IP, strconv.Itoa(port))
}

func condition(typ string, status bool, reason, format string, args ...any) controlplane.ConditionReport {
	return controlplane.ConditionReport{Type: typ, Status: status, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// errSuperseded stops an operation whose Cluster is being deleted.
var errSuperseded = errors.New("the cluster is being deleted")

// checkpoint is the boundary between two steps: it reads the Cluster again, holds while
// spec.paused is set (status says Paused, the operation in flight stays recorded), and tells
// the operation to stop when the Cluster is being deleted.
func (o *op) checkpoint(ctx workflow.Context) (stop bool, err error) {
	for {
		if err := o.read(ctx); err != nil {
			return false, err
		}
		if !o.view.Found || o.view.Deleting {
			return true, nil
		}
		if !o.view.Paused {
			return false, nil
		}
		if err := o.report(ctx, kokv1.ClusterPaused, o.s.Report.Operation,
			condition(kokv1.ConditionProgressing, false, kokv1.ReasonPaused, "spec.paused is set: the operation holds before its next step")); err != nil {
			return false, err
		}
		o.reconcile.Receive(ctx, nil)
		drain(o.reconcile)
	}
}

// drain empties a signal channel: many signals in a row are one wake-up.
func drain(ch workflow.ReceiveChannel) {
	for ch.ReceiveAsync(nil) {
	}
}
