package cluster

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
)

// UpgradeWorkflow moves the masters from the current package version to the target one (an
// upgrade, or a rollback by pointing spec.packageVersion back): every master must be healthy
// first; then one master — the canary — is changed component by component and must be
// healthy at the new version within spec.upgrade.healthTimeout before the next master starts.
// Any failure puts every touched master back to where it was (unless autoRollback is off,
// which stops in WaitingForHuman) and the status says why.
func UpgradeWorkflow(ctx workflow.Context, p OpParams) (OpResult, error) {
	s := p.State
	o := &op{cluster: p.Cluster, meta: p.MetaCluster, s: &s, view: p.View, reconcile: workflow.GetSignalChannel(ctx, SignalReconcile)}
	// Render each master once per direction: every render carries the master's key material
	// into history, and a per-component render put 5 copies per master there.
	renderOnce := workflow.GetVersion(ctx, ChangeRenderOnce, workflow.DefaultVersion, 1) >= 1
	// What runs is the entity's record: the status may not say so yet (an edit made while the
	// create ran is seen before the first report at the new version).
	from, to := p.State.Releases[p.State.Report.Current], *p.View.Target
	if from.Name == "" {
		from = controlplane.Release{Name: p.State.Report.Current}
	}
	typ, phase := kokv1.ClusterOperationUpgrade, kokv1.ClusterUpgrading
	if p.Type == OpRollback {
		typ, phase = kokv1.ClusterOperationRollback, kokv1.ClusterRollingBack
	}
	started := workflow.Now(ctx)
	s.Report.Target = to.Name
	operation := &controlplane.OperationReport{Type: string(typ), StartedAt: started}
	masterPhase := map[string]kokv1.MasterPhase{}
	say := func(step, format string, args ...any) error {
		operation.Step, operation.Message = step, fmt.Sprintf(format, args...)
		return o.report(ctx, phase, operation,
			condition(kokv1.ConditionProgressing, true, string(typ), "%s: %s", step, operation.Message),
			condition(kokv1.ConditionReady, true, kokv1.ReasonRunning, "serving while %s moves to %s", from.Name, to.Name))
	}

	// 1. Every master healthy before anything changes: a change never starts on a fault.
	checks, err := o.check(ctx, s.Masters)
	if err != nil {
		return o.result(err)
	}
	facts := o.facts(ctx)
	var health []MasterHealth
	for _, mr := range o.masterReports(checks, facts, nil) {
		health = append(health, MasterHealth{Host: mr.Host, Healthy: mr.Ready, Why: whyUnready(mr)})
	}
	order, refused := UpgradeOrder(health)
	if refused != "" {
		return OpResult{State: s, NotStarted: refused}, nil
	}
	operation.CanaryHost = order[0]

	// 2. Master by master, canary first.
	original := map[string]map[string]string{}
	var touched []string
	var failure error
	for i, h := range order {
		if stop, err := o.checkpoint(ctx); err != nil || stop {
			if err == nil {
				err = errSuperseded
			}
			return o.result(err)
		}
		label := fmt.Sprintf("master %s (%d of %d)", h, i+1, len(order))
		if i == 0 {
			label = fmt.Sprintf("canary master %s", h)
		}
		steps, err := ComponentOrder(p.Type, versionsOf(s.Running[h], s.Releases), to.Components)
		if err != nil {
			failure = err
			break
		}
		original[h] = copyMap(s.Running[h])
		touched = append(touched, h)
		masterPhase[h] = kokv1.MasterUpgrading
		s.Report.Masters = o.masterReports(checks, facts, masterPhase)
		var specs map[string]hostapi.PackageSpec
		if renderOnce {
			if specs, err = o.renderFor(ctx, h, moved(s.Running[h], steps, func(ComponentStep) string { return to.Name })); err != nil {
				failure = fmt.Errorf("render %s: %w", h, err)
				break
			}
		}
		for _, st := range steps {
			if st.Skip != "" {
				o.event(ctx, false, kokv1.EventClusterComponentKept, "%s: %s", h, st.Skip)
				continue
			}
			if err := say(label, "%s %s -> %s", st.Component, st.From, st.To); err != nil {
				return o.result(err)
			}
			s.Running[h][st.Component] = to.Name
			var err error
			if !renderOnce {
				specs, err = o.render(ctx, h)
			}
			if err == nil {
				err = o.ensure(ctx, h, specs[st.Component]).Get(ctx, nil)
			}
			if err == nil && st.Component == KubeAPIServer {
				// The components after it start by reading from their master's API server: a
				// controller-manager started before the new apiserver serves exits at once.
				err = o.waitReady(ctx, []process.Master{masterOf(s.Masters, h)}, to.KubernetesVersion, p.View.HealthTimeout)
			}
			if err != nil {
				failure = fmt.Errorf("%s on %s: %w", st.Component, h, err)
				break
			}
		}
		if failure == nil {
			if err := say(label, "waiting up to %s for %s to be healthy at %s", p.View.HealthTimeout, h, to.KubernetesVersion); err != nil {
				return o.result(err)
			}
			failure = o.waitReady(ctx, []process.Master{masterOf(s.Masters, h)}, to.KubernetesVersion, p.View.HealthTimeout)
		}
		if failure != nil {
			break
		}
		delete(masterPhase, h)
		o.event(ctx, false, kokv1.EventClusterMasterUpgraded, "%s runs %s", h, to.Name)
	}
	if failure == nil {
		s.Report.Previous, s.Report.Current, s.Report.Target = from.Name, to.Name, ""
		s.Report.Masters = o.masterReports(checksAfter(ctx, o), o.facts(ctx), nil)
		return OpResult{State: s}, nil
	}

	// 3. A step failed: put every touched master back, newest first.
	why := fmt.Sprintf("%s to %s failed: %v", typ, to.Name, failure)
	o.event(ctx, true, kokv1.EventClusterUpgradeFailed, "%s", why)
	if !p.View.AutoRollback {
		s.WaitingForHuman = why + " (spec.upgrade.autoRollback is false: resolve by hand, then signal resolve)"
		return OpResult{State: s, RolledBack: ""}, nil
	}
	phase, typ, operation.Type = kokv1.ClusterRollingBack, kokv1.ClusterOperationRollback, string(kokv1.ClusterOperationRollback)
	for i := len(touched) - 1; i >= 0; i-- {
		h := touched[i]
		steps, err := ComponentOrder(OpRollback, versionsOf(s.Running[h], s.Releases), versionsOf(original[h], s.Releases))
		if err != nil {
			return o.result(err)
		}
		var specs map[string]hostapi.PackageSpec
		if renderOnce {
			if specs, err = o.renderFor(ctx, h, moved(s.Running[h], steps, func(st ComponentStep) string { return original[h][st.Component] })); err != nil {
				s.WaitingForHuman = fmt.Sprintf("%s; rendering %s to roll it back failed too: %v", why, h, err)
				return OpResult{State: s}, nil
			}
		}
		for _, st := range steps {
			if st.Skip != "" {
				continue
			}
			if err := say("roll back "+h, "%s %s -> %s (%s)", st.Component, st.From, st.To, why); err != nil {
				return o.result(err)
			}
			s.Running[h][st.Component] = original[h][st.Component]
			var err error
			if !renderOnce {
				specs, err = o.render(ctx, h)
			}
			if err == nil {
				err = o.ensure(ctx, h, specs[st.Component]).Get(ctx, nil)
			}
			if err == nil && st.Component == KubeAPIServer {
				err = o.waitReady(ctx, []process.Master{masterOf(s.Masters, h)}, from.KubernetesVersion, p.View.HealthTimeout)
			}
			if err != nil {
				s.WaitingForHuman = fmt.Sprintf("%s; rolling back %s on %s failed too: %v", why, st.Component, h, err)
				return OpResult{State: s}, nil
			}
		}
		if err := o.waitReady(ctx, []process.Master{masterOf(s.Masters, h)}, from.KubernetesVersion, p.View.HealthTimeout); err != nil {
			s.WaitingForHuman = fmt.Sprintf("%s; after the rollback %s is still unhealthy: %v", why, h, err)
			return OpResult{State: s}, nil
		}
	}
	s.Report.Target = ""
	s.Report.Masters = o.masterReports(checksAfter(ctx, o), o.facts(ctx), nil)
	return OpResult{State: s, RolledBack: why}, nil
}

// checksAfter is a best-effort final check for the status (an error leaves it empty).
func checksAfter(ctx workflow.Context, o *op) map[string]controlplane.MasterCheck {
	c, err := o.check(ctx, o.s.Masters)
	if err != nil {
		return nil
	}
	return c
}

func whyUnready(mr controlplane.MasterReport) string {
	for _, c := range mr.Components {
		if !c.Ready {
			return c.Name + ": " + c.Message
		}
	}
	return ""
}

func masterOf(ms []process.Master, h string) process.Master {
	for _, m := range ms {
		if m.Host == h {
			return m
		}
	}
	return process.Master{Host: h}
}

// moved is running with every step that is taken (not skipped) at the release to gives it.
func moved(running map[string]string, steps []ComponentStep, to func(ComponentStep) string) map[string]string {
	out := copyMap(running)
	for _, st := range steps {
		if st.Skip == "" {
			out[st.Component] = to(st)
		}
	}
	return out
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	// Copying is order-independent
	//workflowcheck:ignore
	for k, v := range m {
		out[k] = v
	}
	return out
}
