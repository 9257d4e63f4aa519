package cluster

import (
	"fmt"
	"sort"
	"time"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
)

// Workflow keeps one Cluster's control plane at its spec for as long as the Cluster exists.
// It is the only writer of the Cluster's status, and it runs one operation at a time as a
// child workflow (create, upgrade or rollback, heal, delete): an edit made while one runs is
// seen when it ends, never interleaved with it.
func Workflow(ctx workflow.Context, p Params) error {
	s := p.State
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return s, nil }); err != nil {
		return err
	}
	o := &op{cluster: p.Cluster, meta: p.MetaCluster, s: &s, reconcile: workflow.GetSignalChannel(ctx, SignalReconcile)}
	o.atRest = workflow.GetVersion(ctx, ChangeAtRest, workflow.DefaultVersion, 1) >= 1
	resolve := workflow.GetSignalChannel(ctx, SignalResolve)

	for {
		// 1. Read the Cluster with its package versions resolved.
		if err := o.read(ctx); err != nil {
			return err
		}
		v := o.view
		if !v.Found {
			return nil
		}
		// 2. Deleting: tear down (unless Orphan) and let the object go.
		if v.Deleting {
			// Anything created counts, also by a create that failed or was overtaken: its
			// masters were resolved, or its PKI written.
			if (s.Created || len(s.Masters) > 0 || s.Report.HasKubeconfig) && !v.Orphan {
				c := DeleteOp
				if v.Provider == string(kokv1.ProviderKok) {
					c = HostedOp
				}
				if _, err := o.child(ctx, c, OpParams{Type: OpDelete}); err != nil {
					return err
				}
			}
			return workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.ReleaseCluster, controlplane.ReadClusterParams{Name: p.Cluster}).Get(ctx, nil)
		}

		if o.atRest {
			o.resolveByAnnotation(ctx)
		}
		// A resolve sent while nothing waits for one must not lift a later escalation.
		if s.WaitingForHuman == "" {
			drain(resolve)
		}
		// 3. Paused, or waiting for a human: nothing changes until that is lifted.
		if v.Paused {
			if err := o.report(ctx, kokv1.ClusterPaused, nil, condition(kokv1.ConditionProgressing, false, kokv1.ReasonPaused, "spec.paused is set: nothing changes")); err != nil {
				return err
			}
			if err := o.wait(ctx, 0, nil); err != nil {
				return err
			}
			continue
		}
		if s.WaitingForHuman != "" && o.atRest {
			if err := o.waitForHuman(ctx, resolve); err != nil {
				return err
			}
			continue
		}
		if s.WaitingForHuman != "" {
			if err := o.report(ctx, kokv1.ClusterWaitingForHuman, nil,
				condition(kokv1.ConditionReady, false, kokv1.ReasonRecoveryLimitReached, "%s; signal %q to workflow %s once fixed", s.WaitingForHuman, SignalResolve, WorkflowID(p.Cluster))); err != nil {
				return err
			}
			if err := o.wait(ctx, 0, resolve); err != nil {
				return err
			}
			continue
		}

		// 4. The package version must resolve before anything is built from it.
		if v.Target == nil {
			if err := o.report(ctx, o.idlePhase(), nil, condition(kokv1.ClusterConditionPackageVersionResolved, false, kokv1.ReasonNotFound, "%s", v.TargetUnresolved)); err != nil {
				return err
			}
			if err := o.wait(ctx, 0, nil); err != nil {
				return err
			}
			continue
		}
		resolved := condition(kokv1.ClusterConditionPackageVersionResolved, true, kokv1.ReasonResolved, "%s is Kubernetes %s", v.Target.Name, v.Target.KubernetesVersion)

		// 5. Decide and run the operation.
		pass := o.pass
		if v.Provider == string(kokv1.ProviderKok) {
			pass = o.hostedPass
		}
		wait, err := pass(ctx, resolved)
		if err != nil {
			return err
		}
		s.Passes++
		if s.Passes >= maxPasses || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			drain(o.reconcile)
			s.Passes = 0
			return workflow.NewContinueAsNewError(ctx, WorkflowName, Params{Cluster: p.Cluster, MetaCluster: p.MetaCluster, State: s})
		}
		if wait >= 0 {
			if err := o.wait(ctx, wait, nil); err != nil {
				return err
			}
		}
	}
}

// pass runs what the Cluster needs now and says how long to wait before the next pass (0:
// until a signal; negative: go again at once).
func (o *op) pass(ctx workflow.Context, resolved controlplane.ConditionReport) (time.Duration, error) {
	s, v := o.s, o.view
	// What runs is the workflow's own record once it has created the cluster; the status
	// (its mirror) is the record only for a workflow that starts over an existing cluster.
	current := s.Report.Current
	if !s.Created && v.Current != nil {
		current = v.Current.Name
	}
	obs := Observed{Created: s.Created || current != "", CurrentVersion: kubeVersion(s, current), TargetVersion: v.Target.KubernetesVersion}
	if obs.Created && !s.Created {
		// A new workflow for a cluster created before (its history was lost): the status is
		// the record of what runs.
		if err := o.adopt(ctx, current); err != nil {
			return 0, err
		}
	}
	switch {
	case !obs.Created:
		if err := o.resolveMasters(ctx); err != nil {
			return 0, o.failed(ctx, resolved, "Create", err)
		}
		res, err := o.child(ctx, CreateOp, OpParams{})
		if err != nil {
			return 0, o.failed(ctx, resolved, "Create", err)
		}
		*s = res.State
		if res.Superseded {
			return -1, nil
		}
		o.event(ctx, false, kokv1.EventClusterCreated, "control plane %s is up at %s", v.Target.Name, s.Report.Endpoint)
		return -1, nil

	case current != v.Target.Name && !s.failedAt(v.Target.Name, v.Generation):
		d := DecideOperation(obs)
		if o.atRest {
			d = DecideNext(Move{Created: true, Current: current, CurrentKube: obs.CurrentVersion, Target: v.Target.Name, TargetKube: v.Target.KubernetesVersion})
		}
		if d.Refused != "" {
			s.Report.Target = ""
			return o.health(ctx, resolved, condition(kokv1.ConditionReady, true, kokv1.ReasonUnsupportedVersionSkew, "still at %s: %s", current, d.Refused))
		}
		op := d.Op
		if op == OpNone {
			// Same Kubernetes version, another package version (a rebuilt component): an
			// upgrade moves every component that differs.
			op = OpUpgrade
		}
		res, err := o.child(ctx, UpgradeOp, OpParams{Type: op})
		if err != nil {
			return 0, o.failed(ctx, resolved, string(op), err)
		}
		*s = res.State
		switch {
		case res.NotStarted != "":
			// Heal first; the upgrade is tried again on a later pass.
			o.retrySoon = true
			return o.health(ctx, resolved)
		case res.RolledBack != "":
			s.FailedTarget, s.FailedGeneration = v.Target.Name, v.Generation
			o.event(ctx, true, kokv1.ReasonRolledBack, "%s", res.RolledBack)
			return v.CheckInterval, o.report(ctx, kokv1.ClusterRunning, nil, resolved,
				condition(kokv1.ConditionReady, true, kokv1.ReasonRolledBack, "%s; running %s again. Edit spec.packageVersion to try another version", res.RolledBack, current),
				condition(kokv1.ConditionProgressing, false, kokv1.ReasonRolledBack, "%s", res.RolledBack))
		case res.Superseded, s.WaitingForHuman != "":
			return -1, nil
		}
		o.event(ctx, false, kokv1.EventClusterUpgraded, "every master runs %s", v.Target.Name)
		return -1, nil
	}
	return o.health(ctx, resolved)
}

// health checks every master and heals the unhealthy ones within the recovery budget.
func (o *op) health(ctx workflow.Context, resolved controlplane.ConditionReport, ready ...controlplane.ConditionReport) (time.Duration, error) {
	if o.atRest {
		return o.healthAtRest(ctx, resolved, ready...)
	}
	s, v := o.s, o.view
	checks, err := o.check(ctx, s.Masters)
	if err != nil {
		return 0, err
	}
	s.Report.Masters = o.masterReports(checks, o.facts(ctx), nil)
	var sick []string
	for _, m := range s.Report.Masters {
		if !m.Ready {
			sick = append(sick, m.Host)
		}
	}
	if len(sick) == 0 {
		extra := condition(kokv1.ConditionReady, true, kokv1.ReasonRunning, "%d of %d masters healthy at %s", len(s.Masters), len(s.Masters), s.Report.Current)
		if s.FailedTarget != "" && s.failedAt(v.TargetName, v.Generation) {
			extra = condition(kokv1.ConditionReady, true, kokv1.ReasonRolledBack, "running %s: the upgrade to %s failed and was rolled back; edit spec.packageVersion to try again", s.Report.Current, s.FailedTarget)
		}
		if len(ready) > 0 {
			extra = ready[0]
		}
		return v.CheckInterval, o.report(ctx, kokv1.ClusterRunning, nil, resolved, extra,
			condition(kokv1.ClusterConditionAPIServerAvailable, true, kokv1.ReasonAPIServerReady, "%s answers", s.Report.Endpoint),
			condition(kokv1.ConditionDegraded, false, kokv1.ReasonHealthy, "every master passes its health checks"),
			condition(kokv1.ConditionProgressing, false, kokv1.ReasonIdle, "at %s", s.Report.Current))
	}
	d := DecideHeal(workflow.Now(ctx), s.Recoveries, v.MaxAutoRecoveries, v.RecoveryWindow)
	if d.Escalate {
		s.WaitingForHuman = fmt.Sprintf("masters %v stay unhealthy after %s", sick, d.Reason)
		o.event(ctx, true, kokv1.ReasonRecoveryLimitReached, "%s", s.WaitingForHuman)
		return -1, nil
	}
	// Only recoveries within the window count; older ones are dropped so state stays small.
	s.Recoveries = append(RecoveriesWithin(workflow.Now(ctx), s.Recoveries, v.RecoveryWindow), workflow.Now(ctx))
	o.event(ctx, true, kokv1.ReasonHealing, "masters %v are unhealthy: %s", sick, d.Reason)
	res, err := o.child(ctx, HealOp, OpParams{Hosts: sick})
	if err != nil {
		return 0, err
	}
	*s = res.State
	return -1, nil
}

// resolveMasters asks each master host's agent for its address, once, before create.
func (o *op) resolveMasters(ctx workflow.Context) error {
	ports, err := process.PortsFor(o.view.APIServerPort)
	if err != nil {
		return temporal.NewNonRetryableApplicationError(err.Error(), hostapi.ErrTypeBadSpec, err)
	}
	o.s.Ports = ports
	o.s.Masters = nil
	for _, h := range o.view.MasterHosts {
		c := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue: queue.HostTaskQueue(h), ScheduleToStartTimeout: agentScheduleToStart,
			StartToCloseTimeout: 30 * time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3},
		})
		var f hostapi.FactsResult
		if err := workflow.ExecuteActivity(c, hostActs.Facts).Get(ctx, &f); err != nil {
			return fmt.Errorf("master host %s: its agent does not answer: %w", h, err)
		}
		o.s.Masters = append(o.s.Masters, process.Master{Host: h, IP: f.Address})
	}
	sort.Slice(o.s.Masters, func(i, j int) bool { return o.s.Masters[i].Host < o.s.Masters[j].Host })
	return nil
}

// adopt rebuilds the state of a cluster created by an earlier workflow from its status.
func (o *op) adopt(ctx workflow.Context, current string) error {
	if err := o.resolveMasters(ctx); err != nil {
		return err
	}
	s := o.s
	s.Created = true
	s.Running = map[string]map[string]string{}
	for _, m := range s.Masters {
		s.Running[m.Host] = releaseAll(s.Releases[current])
	}
	s.Report.Current, s.Report.Previous = current, o.view.Previous
	s.Report.Endpoint = Endpoint(o.view.ControlPlaneEndpoint, s.Masters, s.Ports.APIServer)
	s.Report.HasKubeconfig = true
	return nil
}

// failed reports an operation that failed for good; the workflow waits for an edit.
func (o *op) failed(ctx workflow.Context, resolved controlplane.ConditionReport, what string, err error) error {
	o.event(ctx, true, kokv1.ReasonFailed, "%s failed: %v", what, err)
	if rerr := o.report(ctx, kokv1.ClusterFailed, nil, resolved,
		condition(kokv1.ConditionReady, false, kokv1.ReasonFailed, "%s failed: %v. Fix the cause, then edit the Cluster (or signal %s) to try again", what, err, SignalReconcile)); rerr != nil {
		return rerr
	}
	return nil
}

func (o *op) idlePhase() kokv1.ClusterPhase {
	if o.s.Created {
		return kokv1.ClusterRunning
	}
	return kokv1.ClusterPending
}

// child runs one operation as a child workflow, forwarding reconcile signals to it (it reads
// the Cluster at its step boundaries, for pause and delete).
func (o *op) child(ctx workflow.Context, c Child, p OpParams) (OpResult, error) {
	o.s.Ops++
	p.Cluster, p.MetaCluster, p.State, p.View = o.cluster, o.meta, *o.s, o.view
	name := c.Name
	id := fmt.Sprintf("%s/%s-%d", WorkflowID(o.cluster), name, o.s.Ops)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID: id, TaskQueue: queue.ControlTaskQueue,
	})
	f := workflow.ExecuteChildWorkflow(cctx, name, p)
	var res OpResult
	done := false
	for !done {
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(f, func(workflow.Future) { done = true })
		sel.AddReceive(o.reconcile, func(ch workflow.ReceiveChannel, _ bool) {
			drain(ch)
			_ = workflow.SignalExternalWorkflow(ctx, id, "", SignalReconcile, nil).Get(ctx, nil)
		})
		sel.Select(ctx)
	}
	if err := f.Get(ctx, &res); err != nil {
		return OpResult{State: *o.s}, err
	}
	if o.atRest {
		res.State.Health, o.workloads = controlplane.CheckResult{}, nil // the operation changed the masters: look afresh
	}
	return res, nil
}

// wait blocks until a reconcile signal (or one on extra), or d passes when d > 0.
func (o *op) wait(ctx workflow.Context, d time.Duration, extra workflow.ReceiveChannel) error {
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(o.reconcile, func(ch workflow.ReceiveChannel, _ bool) { drain(ch) })
	if extra != nil {
		sel.AddReceive(extra, func(ch workflow.ReceiveChannel, _ bool) {
			drain(ch)
			o.s.WaitingForHuman, o.s.Recoveries = "", nil
		})
	}
	if d > 0 {
		tctx, cancel := workflow.WithCancel(ctx)
		defer cancel()
		sel.AddFuture(workflow.NewTimer(tctx, d), func(workflow.Future) {})
	}
	sel.Select(ctx)
	return nil
}

func kubeVersion(s *State, rel string) string {
	return s.Releases[rel].KubernetesVersion
}

// failedAt says whether target's upgrade already failed at this generation of the spec: it is
// not tried again until the spec changes.
func (s *State) failedAt(target string, generation int64) bool {
	return s.FailedTarget == target && s.FailedGeneration == generation
}
