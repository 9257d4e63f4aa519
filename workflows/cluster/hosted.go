package cluster

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	pkiacts "kok.dev/activities/pki"
	hosted "kok.dev/activities/provider/kok"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/workflows/internal/kit"
)

// HostedWorkflowName runs one operation of a Cluster with provider kok.
const HostedWorkflowName = "ClusterHosted"

var kokActs *hosted.Activities

// HostedWorkflow is create, upgrade, rollback and delete for provider kok, whose control plane
// runs as a StatefulSet and Deployments in the meta cluster: the workloads' own rolling update
// is the one-replica-at-a-time change, so an operation here is "apply the release, then wait
// for every workload to have rolled out at it". A rollout that is not healthy within
// spec.upgrade.healthTimeout is rolled back by applying the previous release.
func HostedWorkflow(ctx workflow.Context, p OpParams) (OpResult, error) {
	s := p.State
	o := &op{cluster: p.Cluster, meta: p.MetaCluster, s: &s, view: p.View, reconcile: workflow.GetSignalChannel(ctx, SignalReconcile)}
	v := p.View
	network := kokv1.ClusterNetwork{
		ServiceCIDR: v.ServiceCIDR, PodCIDR: v.PodCIDR, APIServerPort: int32(v.APIServerPort), ControlPlaneEndpoint: v.ControlPlaneEndpoint,
	}
	operation := &controlplane.OperationReport{Type: string(p.Type), StartedAt: workflow.Now(ctx)}
	phase := map[Operation]kokv1.ClusterPhase{OpCreate: kokv1.ClusterCreating, OpUpgrade: kokv1.ClusterUpgrading, OpRollback: kokv1.ClusterRollingBack, OpDelete: kokv1.ClusterDeleting}[p.Type]
	say := func(step, format string, args ...any) error {
		operation.Step, operation.Message = step, fmt.Sprintf(format, args...)
		return o.report(ctx, phase, operation, condition(kokv1.ConditionProgressing, true, string(p.Type), "%s: %s", step, operation.Message))
	}

	if p.Type == OpDelete {
		// 1. Workloads go first, then (once nothing is left) the PKI.
		if err := say("control plane", "deleting the workloads in %s", pkiacts.Namespace(p.Cluster)); err != nil {
			return o.result(err)
		}
		for {
			var res hosted.DeleteResult
			if err := workflow.ExecuteActivity(o.metaCtx(ctx), kokActs.DeleteControlPlane, hosted.DeleteParams{Cluster: p.Cluster}).Get(ctx, &res); err != nil {
				return o.result(err)
			}
			if len(res.Left) == 0 {
				break
			}
			if err := workflow.Sleep(ctx, pollEvery); err != nil {
				return o.result(err)
			}
		}
		if err := workflow.ExecuteActivity(o.metaCtx(ctx), pkiActs.DeleteClusterPKI, pkiacts.DeleteClusterPKIParams{Cluster: p.Cluster}).Get(ctx, nil); err != nil {
			return o.result(err)
		}
		s.Created = false
		return OpResult{State: s}, nil
	}

	target := *v.Target
	s.Report.Target = target.Name
	if p.Type == OpCreate {
		// 1. PKI named the way the provider's pods dial each other.
		if err := say("pki", "certificates for %d etcd member(s) and the API server Service", v.MasterCount); err != nil {
			return o.result(err)
		}
		params, err := hosted.PKIParams(p.Cluster, "", int32(v.MasterCount), network)
		if err != nil {
			return OpResult{State: s}, temporal.NewNonRetryableApplicationError(err.Error(), hostapi.ErrTypeBadSpec, err)
		}
		if err := workflow.ExecuteActivity(o.metaCtx(ctx), pkiActs.EnsureClusterPKI, params).Get(ctx, nil); err != nil {
			return o.result(err)
		}
		s.Report.HasKubeconfig = true
		s.Report.Endpoint = params.Server
	}
	// 2. Apply the release and wait for it to roll out.
	apply := func(rel string) error {
		return workflow.ExecuteActivity(o.metaCtx(ctx), kokActs.EnsureControlPlane, hosted.EnsureParams{
			Cluster: p.Cluster, PackageVersion: rel, Masters: int32(v.MasterCount),
		}).Get(ctx, nil)
	}
	if err := say("rollout", "applying %s", target.Name); err != nil {
		return o.result(err)
	}
	failure := apply(target.Name)
	if failure == nil {
		failure = o.waitRollout(ctx, target.Name, v.HealthTimeout)
	}
	if failure == nil {
		if p.Type == OpCreate {
			s.Created = true
		} else {
			s.Report.Previous = s.Report.Current
		}
		s.Report.Current, s.Report.Target = target.Name, ""
		return OpResult{State: s}, nil
	}
	if p.Type == OpCreate || s.Report.Current == "" || !v.AutoRollback {
		return o.result(failure)
	}
	// 3. Roll back to the release that ran.
	why := fmt.Sprintf("%s to %s failed: %v", p.Type, target.Name, failure)
	phase = kokv1.ClusterRollingBack
	if err := say("roll back", "applying %s again (%s)", s.Report.Current, why); err != nil {
		return o.result(err)
	}
	if err := apply(s.Report.Current); err != nil {
		s.WaitingForHuman = fmt.Sprintf("%s; the rollback failed too: %v", why, err)
		return OpResult{State: s}, nil
	}
	if err := o.waitRollout(ctx, s.Report.Current, v.HealthTimeout); err != nil {
		s.WaitingForHuman = fmt.Sprintf("%s; after the rollback the control plane is still unhealthy: %v", why, err)
		return OpResult{State: s}, nil
	}
	s.Report.Target = ""
	return OpResult{State: s, RolledBack: why}, nil
}

// waitRollout polls the workloads until every one runs rel with all replicas ready.
func (o *op) waitRollout(ctx workflow.Context, rel string, timeout time.Duration) error {
	deadline := workflow.Now(ctx).Add(timeout)
	for {
		st, err := o.hostedStatus(ctx, rel)
		if err != nil {
			return err
		}
		if st.Ready {
			return nil
		}
		if !workflow.Now(ctx).Before(deadline) {
			return fmt.Errorf("not rolled out within %s: %s", timeout, st.Message)
		}
		if err := workflow.Sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// hostedStatus reads the workloads and mirrors them into status.masters: one entry per
// replica ("<cluster>-<i>"), each listing the components' versions and readiness.
func (o *op) hostedStatus(ctx workflow.Context, rel string) (hosted.Status, error) {
	var st hosted.Status
	if err := workflow.ExecuteActivity(o.metaCtx(ctx), kokActs.ControlPlaneStatus, hosted.StatusParams{Cluster: o.cluster, PackageVersion: rel}).Get(ctx, &st); err != nil {
		return st, err
	}
	o.s.Report.Masters = hostedMasters(o.cluster, o.view.MasterCount, st)
	return st, nil
}

// hostedMasters mirrors the workloads into status.masters: one entry per replica
// ("<cluster>-<i>"), each listing the components' versions and readiness.
func hostedMasters(cluster string, count int, st hosted.Status) []controlplane.MasterReport {
	var out []controlplane.MasterReport
	for i := 0; i < count; i++ {
		mr := controlplane.MasterReport{Host: fmt.Sprintf("%s-%d", cluster, i), Ready: st.Ready, Phase: string(kokv1.MasterRunning)}
		for _, c := range st.Components {
			mr.Components = append(mr.Components, controlplane.ComponentReport{
				Name: string(c.Name), Version: c.Version, Ready: c.Ready, Message: c.Message,
			})
		}
		if !st.Ready {
			mr.Phase = string(kokv1.MasterProvisioning)
		}
		out = append(out, mr)
	}
	return out
}

// hostedPass is the entity's pass for provider kok: create, move to spec.packageVersion, or
// check the workloads.
func (o *op) hostedPass(ctx workflow.Context, resolved controlplane.ConditionReport) (time.Duration, error) {
	s, v := o.s, o.view
	switch {
	case !s.Created:
		res, err := o.child(ctx, HostedOp, OpParams{Type: OpCreate})
		if err != nil {
			return 0, o.failed(ctx, resolved, "Create", err)
		}
		*s = res.State
		return -1, nil
	case s.Report.Current != v.Target.Name && !s.failedAt(v.Target.Name, v.Generation):
		typ := OpUpgrade
		if o.atRest {
			d := DecideNext(Move{Created: true, Current: s.Report.Current, CurrentKube: kubeVersion(s, s.Report.Current), Target: v.Target.Name, TargetKube: v.Target.KubernetesVersion})
			if d.Refused != "" {
				// The refusal changes nothing that runs: keep checking its health.
				skew := condition(kokv1.ConditionReady, true, kokv1.ReasonUnsupportedVersionSkew, "still at %s: %s", s.Report.Current, d.Refused)
				return o.hostedHealth(ctx, resolved, &skew)
			}
			typ = d.Op
		} else if cur, ok := s.Releases[s.Report.Current]; ok {
			d := DecideOperation(Observed{Created: true, CurrentVersion: cur.KubernetesVersion, TargetVersion: v.Target.KubernetesVersion})
			if d.Refused != "" {
				return 0, o.report(ctx, kokv1.ClusterRunning, nil, resolved,
					condition(kokv1.ConditionReady, true, kokv1.ReasonUnsupportedVersionSkew, "still at %s: %s", s.Report.Current, d.Refused))
			}
			if d.Op == OpRollback {
				typ = OpRollback
			}
		}
		res, err := o.child(ctx, HostedOp, OpParams{Type: typ})
		if err != nil {
			return 0, o.failed(ctx, resolved, string(typ), err)
		}
		*s = res.State
		if res.RolledBack != "" {
			s.FailedTarget, s.FailedGeneration = v.Target.Name, v.Generation
			o.event(ctx, true, kokv1.ReasonRolledBack, "%s", res.RolledBack)
			wait := time.Duration(0)
			if o.atRest {
				// What runs was rolled back to: keep checking its health, as provider process does.
				wait = v.CheckInterval
			}
			return wait, o.report(ctx, kokv1.ClusterRunning, nil, resolved,
				condition(kokv1.ConditionReady, true, kokv1.ReasonRolledBack, "%s; running %s again", res.RolledBack, s.Report.Current))
		}
		return -1, nil
	}
	if o.atRest {
		var ready *controlplane.ConditionReport
		if s.FailedTarget != "" && s.failedAt(v.TargetName, v.Generation) {
			c := condition(kokv1.ConditionReady, true, kokv1.ReasonRolledBack, "running %s: the upgrade to %s failed and was rolled back; edit spec.packageVersion to try again", s.Report.Current, s.FailedTarget)
			ready = &c
		}
		return o.hostedHealth(ctx, resolved, ready)
	}
	st, err := o.hostedStatus(ctx, s.Report.Current)
	if err != nil {
		return 0, err
	}
	if !st.Ready {
		// The workloads' controllers heal pods themselves; the status says what is missing.
		return v.CheckInterval, o.report(ctx, kokv1.ClusterRunning, nil, resolved,
			condition(kokv1.ConditionDegraded, true, kokv1.ReasonWorkloadsNotReady, "%s", st.Message),
			condition(kokv1.ConditionReady, false, kokv1.ReasonWorkloadsNotReady, "%s", st.Message))
	}
	return v.CheckInterval, o.report(ctx, kokv1.ClusterRunning, nil, resolved,
		condition(kokv1.ConditionReady, true, kokv1.ReasonRunning, "every workload runs %s", s.Report.Current),
		condition(kokv1.ConditionDegraded, false, kokv1.ReasonHealthy, "every workload is ready"),
		condition(kokv1.ConditionProgressing, false, kokv1.ReasonIdle, "at %s", s.Report.Current))
}

// hostedHealth is provider kok's pass when nothing is to change: status from the workloads
// as last seen (written only when it changed), then WatchControlPlaneStatus until they change,
// a signal comes, or maxWatch passes. The workloads' own controllers heal pods, so there is
// nothing to heal or count here. ready, when given, is the Ready condition of healthy
// workloads (a refused skew, a rolled-back upgrade).
func (o *op) hostedHealth(ctx workflow.Context, resolved controlplane.ConditionReport, ready *controlplane.ConditionReport) (time.Duration, error) {
	s, v := o.s, o.view
	// 1. The workloads as the last watch saw them, or a look now.
	if o.workloads == nil || o.workloads.PackageVersion != s.Report.Current {
		var st hosted.Status
		if err := workflow.ExecuteActivity(o.metaCtx(ctx), kokActs.ControlPlaneStatus, hosted.StatusParams{Cluster: o.cluster, PackageVersion: s.Report.Current}).Get(ctx, &st); err != nil {
			return 0, err
		}
		o.workloads = &st
	}
	st := *o.workloads
	// 2. Status, when it says something new.
	conds := []controlplane.ConditionReport{
		resolved,
		condition(kokv1.ConditionDegraded, true, kokv1.ReasonWorkloadsNotReady, "%s", st.Message),
		condition(kokv1.ConditionReady, false, kokv1.ReasonWorkloadsNotReady, "%s", st.Message),
	}
	if st.Ready {
		r := condition(kokv1.ConditionReady, true, kokv1.ReasonRunning, "every workload runs %s", s.Report.Current)
		if ready != nil {
			r = *ready
		}
		conds = []controlplane.ConditionReport{
			resolved, r,
			condition(kokv1.ConditionDegraded, false, kokv1.ReasonHealthy, "every workload is ready"),
			condition(kokv1.ConditionProgressing, false, kokv1.ReasonIdle, "at %s", s.Report.Current),
		}
	}
	if err := o.reportIfChanged(ctx, kokv1.ClusterRunning, hostedMasters(o.cluster, v.MasterCount, st), conds...); err != nil {
		return 0, err
	}
	// 3. Watch until the workloads change.
	wctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	f := workflow.ExecuteActivity(o.watchCtx(wctx), kokActs.WatchControlPlaneStatus, hosted.WatchParams{
		StatusParams: hosted.StatusParams{Cluster: o.cluster, PackageVersion: s.Report.Current},
		Interval:     o.interval(), For: kit.Jitter(maxWatch, WorkflowID(o.cluster), s.Passes), Last: st.Key(), Confirm: confirmUnhealthy,
	})
	var (
		res  hosted.WatchResult
		ferr error
		done bool
	)
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(f, func(f workflow.Future) { ferr, done = f.Get(ctx, &res), true })
	sel.AddReceive(o.reconcile, func(ch workflow.ReceiveChannel, _ bool) { kit.Drain(ch) })
	sel.Select(ctx)
	switch {
	case !done:
	case ferr != nil:
		return 0, ferr
	default:
		o.workloads = &res.Status
	}
	return -1, nil
}
