package cluster

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/contract/queue"
	"kok.dev/workflows/internal/kit"
)

// Change IDs (workflow.GetVersion): runs started by older code keep their command sequence.
const (
	// ChangeAtRest: the entity watches health inside WatchControlPlane and writes status only
	// when it changes; it tells a master the meta cluster cannot reach from an unhealthy one;
	// it keeps checking while waiting for a human and ends that wait after healthy checks; it
	// counts only heals that acted; it reads the resolve annotation; and provider kok keeps
	// checking health after a rollback or a refused skew.
	ChangeAtRest = "cluster-at-rest"
	// ChangeRenderOnce: an upgrade renders each master once per direction, not once per
	// component.
	ChangeRenderOnce = "cluster-render-once"
)

const (
	// maxWatch bounds one WatchControlPlane (jittered ±10% per cluster and pass): the entity
	// then reads the Cluster again, so an edit whose signal was lost is seen within it.
	maxWatch = 6 * time.Hour
	// confirmUnhealthy: checks in a row that must see a new fault before the entity acts, so a
	// restart shorter than a check interval is no news.
	confirmUnhealthy = 2
	// confirmHealthy: healthy checks in a row that end a wait for a human by themselves.
	confirmHealthy = 3
)

// healthAtRest is the process path's pass when nothing is to change: assess the masters (asking
// their agents only when some API server is not ready), heal the sick ones within the budget,
// write status when it differs, then watch until the verdict changes. A healthy cluster costs
// one ReadCluster and one WatchControlPlane every maxWatch. ready, when given, is the Ready
// condition of a healthy cluster (a refused skew says so there).
func (o *op) healthAtRest(ctx workflow.Context, resolved controlplane.ConditionReport, ready ...controlplane.ConditionReport) (time.Duration, error) {
	s, v := o.s, o.view
	// 1. A verdict to act on: the last watch's, or a check now.
	if !sameHosts(s.Health, s) {
		var res controlplane.CheckResult
		if err := workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.CheckControlPlane, controlplane.CheckParams{
			Cluster: o.cluster, Masters: s.Masters, Port: s.Ports.APIServer,
		}).Get(ctx, &res); err != nil {
			return 0, err
		}
		s.Health = res
	}
	a := o.assess(ctx)

	// 2. Sick masters are healed within the budget; unreachable ones are not touched.
	if len(a.Sick) > 0 {
		return o.healSick(ctx, resolved, a)
	}

	// 3. Status, when it says something new.
	var readyCond *controlplane.ConditionReport
	if len(ready) > 0 {
		readyCond = &ready[0]
	} else if s.FailedTarget != "" && s.failedAt(v.TargetName, v.Generation) {
		c := condition(kokv1.ConditionReady, true, kokv1.ReasonRolledBack, "running %s: the upgrade to %s failed and was rolled back; edit spec.packageVersion to try again", s.Report.Current, s.FailedTarget)
		readyCond = &c
	}
	conds := append([]controlplane.ConditionReport{resolved}, HealthConditions(a, s.Report.Current, s.Report.Endpoint, readyCond)...)
	if err := o.reportIfChanged(ctx, kokv1.ClusterRunning, a.Masters, conds...); err != nil {
		return 0, err
	}

	// 4. Watch until the verdict changes, a signal comes, or maxWatch passes; after an
	// operation that did not start, only one interval: it is tried again then.
	if o.retrySoon {
		o.retrySoon = false
		return o.interval(), nil
	}
	if _, err := o.watch(ctx, confirmUnhealthy, nil); err != nil {
		return 0, err
	}
	return -1, nil
}

// healSick runs ClusterHeal on the sick masters, or escalates when the budget is spent. Only a
// heal that had to act (or could not make the master healthy) spends the budget: masters that
// came back on their own while the heal looked were not recovered by kok.
func (o *op) healSick(ctx workflow.Context, resolved controlplane.ConditionReport, a Assessment) (time.Duration, error) {
	s, v := o.s, o.view
	now := workflow.Now(ctx)
	d := DecideHeal(now, s.Recoveries, v.MaxAutoRecoveries, v.RecoveryWindow)
	if d.Escalate {
		s.WaitingForHuman = fmt.Sprintf("masters %v stay unhealthy after %s", a.Sick, d.Reason)
		o.event(ctx, true, kokv1.ReasonRecoveryLimitReached, "%s", s.WaitingForHuman)
		return -1, nil
	}
	o.event(ctx, true, kokv1.ReasonHealing, "masters %v are unhealthy: %s", a.Sick, d.Reason)
	res, err := o.child(ctx, HealOp, OpParams{Hosts: a.Sick})
	if err != nil {
		return 0, err
	}
	*s = res.State
	s.Health = controlplane.CheckResult{} // the next pass checks afresh
	if res.Outcome.Counts() {
		s.Recoveries = append(RecoveriesWithin(now, s.Recoveries, v.RecoveryWindow), now)
	}
	if res.Outcome == OutcomeFailed {
		o.event(ctx, true, kokv1.ReasonHealFailed, "%s", res.Why)
		if err := o.reportIfChanged(ctx, kokv1.ClusterRunning, s.Report.Masters, resolved,
			condition(kokv1.ConditionReady, false, kokv1.ReasonHealFailed, "%s", res.Why),
			condition(kokv1.ConditionDegraded, true, kokv1.ReasonHealFailed, "%s", res.Why)); err != nil {
			return 0, err
		}
	}
	return -1, nil
}

// waitForHuman holds a cluster whose recovery budget is spent: status says why, and the
// masters are still watched. It ends when a person resolves (the annotation, read by the next
// pass, or the resolve signal: the budget starts again), or by itself when confirmHealthy
// checks in a row find every master healthy (the budget keeps counting: a master that keeps
// failing escalates again at once).
func (o *op) waitForHuman(ctx workflow.Context, resolve workflow.ReceiveChannel) error {
	s := o.s
	if len(s.Masters) > 0 && !sameHosts(s.Health, s) {
		var res controlplane.CheckResult
		if err := workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.CheckControlPlane, controlplane.CheckParams{
			Cluster: o.cluster, Masters: s.Masters, Port: s.Ports.APIServer,
		}).Get(ctx, &res); err != nil {
			return err
		}
		s.Health = res
	}
	a := o.assess(ctx)
	masters := s.Report.Masters
	if len(s.Masters) > 0 {
		masters = a.Masters
	}
	if err := o.reportIfChanged(ctx, kokv1.ClusterWaitingForHuman, masters, WaitingConditions(a, s.WaitingForHuman, WorkflowID(o.cluster))...); err != nil {
		return err
	}
	if len(s.Masters) == 0 {
		// Nothing to watch (provider kok): only a person ends the wait.
		return o.wait(ctx, 0, resolve)
	}
	woke, err := o.watch(ctx, confirmHealthy, resolve)
	if err != nil {
		return err
	}
	if woke == wokeChanged && allReady(s.Health) {
		o.event(ctx, false, kokv1.ReasonRecoveredByItself, "every master passed %d health checks in a row: no longer waiting for a human (%s)", confirmHealthy, s.WaitingForHuman)
		s.WaitingForHuman = ""
	}
	return nil
}

// resolveByAnnotation acts on a new value of the annotation kok.dev/resolve: once per value,
// and only while a human is waited for (a value seen while nothing waited is remembered, so it
// does not lift a later escalation).
func (o *op) resolveByAnnotation(ctx workflow.Context) {
	s, v := o.s, o.view
	if v.Resolve == s.Resolved {
		return
	}
	s.Resolved = v.Resolve
	if v.Resolve == "" || s.WaitingForHuman == "" {
		return
	}
	o.event(ctx, false, kokv1.ReasonResolvedByHuman, "annotation %s=%s: no longer waiting for a human (%s)", kokv1.AnnotationResolve, v.Resolve, s.WaitingForHuman)
	s.WaitingForHuman, s.Recoveries = "", nil
}

// assess classifies the masters from s.Health, asking their agents only when some API server
// is not ready.
func (o *op) assess(ctx workflow.Context) Assessment {
	s := o.s
	var facts map[string]*hostapi.FactsResult
	if !allReady(s.Health) {
		facts = o.facts(ctx)
	}
	return Assess(o.cluster, s.Masters, s.Running, s.Releases, checksByHost(s.Health), facts)
}

type woke int

const (
	wokeSignal woke = iota
	wokeChanged
	wokeUnchanged
)

// watch runs WatchControlPlane from s.Health and waits for it, a reconcile signal or one on
// extra (which, as in wait, resolves). A changed verdict becomes s.Health.
func (o *op) watch(ctx workflow.Context, confirm int, extra workflow.ReceiveChannel) (woke, error) {
	s := o.s
	wctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	f := workflow.ExecuteActivity(o.watchCtx(wctx), cpActs.WatchControlPlane, controlplane.WatchParams{
		CheckParams: controlplane.CheckParams{Cluster: o.cluster, Masters: s.Masters, Port: s.Ports.APIServer},
		Interval:    o.interval(), For: kit.Jitter(maxWatch, WorkflowID(o.cluster), s.Passes), Last: s.Health, Confirm: confirm,
	})
	var (
		res  controlplane.WatchResult
		ferr error
		done bool
	)
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(f, func(f workflow.Future) { ferr, done = f.Get(ctx, &res), true })
	sel.AddReceive(o.reconcile, func(ch workflow.ReceiveChannel, _ bool) { kit.Drain(ch) })
	if extra != nil {
		sel.AddReceive(extra, func(ch workflow.ReceiveChannel, _ bool) {
			kit.Drain(ch)
			s.WaitingForHuman, s.Recoveries = "", nil
		})
	}
	sel.Select(ctx)
	if !done {
		return wokeSignal, nil
	}
	if ferr != nil {
		return 0, ferr
	}
	if !res.Changed {
		return wokeUnchanged, nil
	}
	s.Health = res.CheckResult
	return wokeChanged, nil
}

// interval is spec.health.checkInterval, the time between two checks inside a watch.
func (o *op) interval() time.Duration {
	if o.view.CheckInterval <= 0 {
		return 30 * time.Second
	}
	return o.view.CheckInterval
}

// watchCtx runs a watch activity: bounded by maxWatch and its jitter, heartbeating. The
// heartbeat timeout is how soon a dead manager is noticed (the watch then resumes on another
// replica from its heartbeat); the SDK sends at most one heartbeat per 0.8 of it, so a long
// one keeps the fleet's heartbeats (billed actions, no history) few.
func (o *op) watchCtx(ctx workflow.Context) workflow.Context {
	interval := o.interval()
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: queue.ClusterTaskQueue(o.meta), StartToCloseTimeout: maxWatch*11/10 + 2*interval + time.Minute,
		HeartbeatTimeout: max(2*interval, 5*time.Minute) + time.Minute, RetryPolicy: metaRetry,
	})
}

// reportIfChanged writes the status (no operation in flight, masters as given) only when it
// would differ from the last write, which s.Report always is: a check that finds nothing new
// adds nothing to history or to the meta cluster's API server.
func (o *op) reportIfChanged(ctx workflow.Context, phase kokv1.ClusterPhase, masters []controlplane.MasterReport, conds ...controlplane.ConditionReport) error {
	next := o.s.Report
	next.Name = o.cluster
	next.Phase = string(phase)
	next.Operation = nil
	next.Masters = masters
	if o.view.Generation > next.ObservedGeneration {
		next.ObservedGeneration = o.view.Generation
	}
	next.Conditions = conds
	next.RecentAutoRecoveries = len(RecoveriesWithin(workflow.Now(ctx), o.s.Recoveries, o.view.RecoveryWindow))
	if sameReport(next, o.s.Report) {
		return nil
	}
	o.s.Report.Masters = masters
	return o.report(ctx, phase, nil, conds...)
}

// sameHosts says whether the verdict covers exactly the masters s knows.
func sameHosts(r controlplane.CheckResult, s *State) bool {
	if len(r.Masters) != len(s.Masters) || len(r.Masters) == 0 {
		return false
	}
	for i, m := range s.Masters {
		if r.Masters[i].Host != m.Host {
			return false
		}
	}
	return true
}

func allReady(r controlplane.CheckResult) bool {
	for _, m := range r.Masters {
		if !m.Ready {
			return false
		}
	}
	return true
}
