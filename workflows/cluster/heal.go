package cluster

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
)

// HealWorkflow recovers unhealthy masters (p.Hosts) one at a time: the master is marked
// Isolated, every component of it is ensured again at the version it should run — which
// restarts a dead process, rewrites a drifted config and reinstalls a damaged package — and
// it must pass its health checks within spec.upgrade.healthTimeout. It returns the masters it
// could not recover as Outcome Failed with Why (and, for runs of older parents, in
// NotStarted); Outcome Repaired when some component had to be installed or repaired, and
// RecoveredByItself when nothing needed it (the entity counts only the first and the last
// against its budget).
func HealWorkflow(ctx workflow.Context, p OpParams) (OpResult, error) {
	s := p.State
	o := &op{cluster: p.Cluster, meta: p.MetaCluster, s: &s, view: p.View, reconcile: workflow.GetSignalChannel(ctx, SignalReconcile)}
	operation := &controlplane.OperationReport{Type: string(kokv1.ClusterOperationHeal), StartedAt: workflow.Now(ctx)}
	phase := map[string]kokv1.MasterPhase{}
	var failed []string
	repaired := false
	for _, h := range p.Hosts {
		if stop, err := o.checkpoint(ctx); err != nil || stop {
			if err == nil {
				err = errSuperseded
			}
			return o.result(err)
		}
		phase[h] = kokv1.MasterIsolated
		s.Report.Masters = o.masterReports(nil, o.facts(ctx), phase)
		operation.Step, operation.Message = "recover "+h, fmt.Sprintf("ensuring every component of %s again", h)
		if err := o.report(ctx, kokv1.ClusterHealing, operation,
			condition(kokv1.ConditionDegraded, true, kokv1.ReasonHealing, "%s is unhealthy and being recovered", h)); err != nil {
			return o.result(err)
		}
		specs, err := o.render(ctx, h)
		if err != nil {
			return o.result(err)
		}
		for _, comp := range components {
			sp, ok := specs[comp]
			if !ok {
				continue
			}
			var er hostapi.EnsurePackageResult
			if err := o.ensure(ctx, h, sp).Get(ctx, &er); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %s: %v", h, comp, err))
				break
			}
			if er.Action != "" && er.Action != hostapi.EnsureNone {
				repaired = true
			}
		}
		if err := o.waitReady(ctx, []process.Master{masterOf(s.Masters, h)}, "", p.View.HealthTimeout); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", h, err))
		} else {
			o.event(ctx, false, kokv1.EventClusterMasterRecovered, "%s is healthy again", h)
		}
		delete(phase, h)
	}
	res := OpResult{State: s, Outcome: OutcomeRecoveredByItself}
	if repaired {
		res.Outcome = OutcomeRepaired
	}
	if len(failed) > 0 {
		res.NotStarted = fmt.Sprintf("could not recover %v", failed)
		res.Outcome, res.Why = OutcomeFailed, res.NotStarted
	}
	return res, nil
}
