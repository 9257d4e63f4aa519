package machine

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/contract/queue"
	"kok.dev/workflows/internal/kit"
)

// The loop before changeAtRest, kept unchanged in its command sequence so that runs started by
// the code of 2026-11 still replay (testdata/). Such a run moves to the new loop at its next
// continue-as-new. Do not change what it schedules, in which order, or under which names.

// Timeouts and retries of the legacy loop.
var (
	// legacyKubeRetry: API calls are retried for as long as it takes.
	legacyKubeRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second}
	// legacyScheduleToStart: how long a host task may wait for an agent to pick it up.
	legacyScheduleToStart = time.Minute
	legacyHostRetry       = &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5}
	// legacyShortRetry: how soon to look again when waiting on an agent or a Node.
	legacyShortRetry = 10 * time.Second
	// legacyInstallTimeout bounds one install; legacyHeartbeat notices a killed agent.
	legacyInstallTimeout = 15 * time.Minute
	legacyHeartbeat      = 30 * time.Second
	// legacyHealthWait bounds waiting for a freshly started package to pass its health check.
	legacyHealthWait = 5 * time.Minute
	// legacyMaxPasses: continue-as-new after this many passes.
	legacyMaxPasses = 100
)

// legacyWorkflow is the Machine loop as shipped before changeAtRest.
func legacyWorkflow(ctx workflow.Context, p Params, s *State) error {
	reconcile := workflow.GetSignalChannel(ctx, SignalReconcile)
	m := &legacyRun{p: p, s: s, kubeCtx: workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue.ClusterTaskQueue(p.Cluster),
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         legacyKubeRetry,
	})}

	for {
		// 1. Read the Machine with every reference resolved.
		s.Stage = StageReading
		var d kube.MachineDesired
		if err := workflow.ExecuteActivity(m.kubeCtx, kubeActs.ReadMachine, kube.ReadMachineParams{Name: p.Machine}).Get(ctx, &d); err != nil {
			return err
		}
		if !d.Found {
			return nil
		}
		if d.Generation != s.Generation {
			s.Generation, s.Failed = d.Generation, map[string]string{}
		}

		// 2. Deleting: tear down and let the object go.
		if d.Deleting {
			s.Stage = StageTearingDown
			return m.legacyTeardown(ctx, d)
		}

		// 3. Drive the host to the spec and decide schedulability.
		wait := m.legacyPass(ctx, d)
		s.Passes++

		// 4. Wait for a change or the next drift check, then go again. Signals that arrived
		// meanwhile are drained into this one wake-up.
		if s.Passes >= legacyMaxPasses || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			if !kit.Drain(reconcile) {
				s.Passes = 0
				return workflow.NewContinueAsNewError(ctx, WorkflowName, Params{Cluster: p.Cluster, Machine: p.Machine, State: *s})
			}
			continue
		}
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(reconcile, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		sel.AddFuture(workflow.NewTimer(timerCtx, wait), func(workflow.Future) {})
		sel.Select(ctx)
		cancelTimer()
		kit.Drain(reconcile)
	}
}

// legacyRun is one legacy run's context for the pass helpers.
type legacyRun struct {
	p       Params
	s       *State
	kubeCtx workflow.Context
}

func (m *legacyRun) hostCtx(ctx workflow.Context, d kube.MachineDesired, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              queue.HostTaskQueue(d.Host),
		ScheduleToStartTimeout: legacyScheduleToStart,
		StartToCloseTimeout:    timeout,
		HeartbeatTimeout:       legacyHeartbeat,
		RetryPolicy:            legacyHostRetry,
	})
}

// legacyPass is one convergence pass; it returns how long to wait before the next one.
func (m *legacyRun) legacyPass(ctx workflow.Context, d kube.MachineDesired) time.Duration {
	s := m.s
	now := workflow.Now(ctx)
	r := kube.MachineReport{Name: m.p.Machine, ObservedGeneration: d.Generation, ReportedConditions: d.Conditions, Now: now, LastDriftCheck: s.LastDriftCheck}
	gates := gatesFor(d)
	notes := strings.Join(d.ConditionNotes, "; ")

	// 3a. Nothing is touched while paused or while the spec cannot be resolved.
	if d.Paused {
		s.Stage = StagePaused
		r.Phase = string(kokv1.MachinePaused)
		r.Conditions = append(r.Conditions, cond(kokv1.ConditionProgressing, false, kokv1.ReasonPaused, "spec.paused is true: nothing on the host changes"))
		m.legacyReport(ctx, r)
		return d.DriftInterval
	}
	desired := make([]Package, 0, len(d.Packages))
	specs := map[string]hostapi.PackageSpec{}
	for _, ps := range d.Packages {
		desired = append(desired, Package{Name: ps.Name, Version: ps.Version, DependsOn: ps.DependsOn})
		specs[ps.Name] = ps
	}
	if len(d.ResolveErrors) > 0 {
		s.Stage = StageWaitingForSpec
		r.Phase = string(kokv1.MachineBlocked)
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionPackagesInSync, false, kokv1.ReasonNotFound, strings.Join(d.ResolveErrors, "; ")+"; nothing on the host was changed"))
		m.legacyReport(ctx, r)
		return d.DriftInterval
	}

	// 3b. Ask the host what it has. An agent that does not answer is reported, not waited on.
	s.Stage = StageConverging
	var facts hostapi.FactsResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, 30*time.Second), hostActs.Facts).Get(ctx, &facts); err != nil {
		s.Stage = StageWaitingForAgent
		r.Phase = string(kokv1.MachineNotReady)
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionAgentConnected, false, kokv1.ReasonNoPoller,
			fmt.Sprintf("the agent of host %s did not answer on task queue %s: %s", d.Host, queue.HostTaskQueue(d.Host), kit.RootCause(err))))
		m.legacyReport(ctx, r)
		return legacyShortRetry
	}
	r.Facts = &facts
	r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionAgentConnected, true, kokv1.ReasonPolling, "the agent of host "+d.Host+" answers"))

	installed := make([]Installed, 0, len(facts.Installed))
	for _, ip := range facts.Installed {
		installed = append(installed, Installed{Name: ip.Name, Version: ip.Version, DependsOn: ip.DependsOn})
	}
	steps, err := Plan(desired, installed)
	if err != nil {
		s.Stage = StageWaitingForSpec
		r.Phase = string(kokv1.MachineBlocked)
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionPackagesInSync, false, kokv1.ReasonInvalidSpec, err.Error()+"; nothing on the host was changed"))
		m.legacyReport(ctx, r)
		return d.DriftInterval
	}

	// 3c. Components as they stand, then each planned step in order, reporting as we go.
	comps := componentsFrom(desired, installed)
	broken := map[string]bool{} // packages that failed, so their dependents are not touched
	// serving: packages that run at some version and that no check of this pass found
	// unhealthy. A failed upgrade that the agent rolled back keeps serving at the old version:
	// schedulability depends on serving, not on being at the spec's version, so a bad release
	// never cordons a fleet by itself.
	serving := map[string]bool{}
	for _, ip := range facts.Installed {
		serving[ip.Name] = ip.ServiceRunning
	}
	for key, why := range sortedMap(s.Failed) {
		name, _, _ := strings.Cut(key, "@")
		broken[name] = true
		comps.set(name, specs[name].Version, kokv1.ComponentFailed, why)
	}
	if len(steps) > 0 {
		r.Phase = string(kokv1.MachineProvisioning)
	}
	for i, st := range steps {
		if blockedBy := dependsOnBroken(specs[st.Name].DependsOn, broken); st.Action != ActionRemove && (broken[st.Name] || blockedBy != "") {
			if blockedBy != "" {
				comps.set(st.Name, st.To, kokv1.ComponentPending, "waiting: depends on "+blockedBy+", which failed")
				broken[st.Name] = true
			}
			continue
		}
		comps.set(st.Name, versionOf(st), phaseOf(st.Action), st.String())
		r.Components = comps.list()
		r.Conditions = upsert(r.Conditions, cond(kokv1.ConditionProgressing, true, kokv1.ReasonInProgress, fmt.Sprintf("step %d/%d: %s", i+1, len(steps), st)))
		m.legacyReport(ctx, r)

		if st.Action == ActionRemove {
			var res hostapi.RemovePackageResult
			if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, legacyInstallTimeout), hostActs.RemovePackage, hostapi.RemovePackageParams{Name: st.Name}).Get(ctx, &res); err != nil {
				comps.set(st.Name, st.From, kokv1.ComponentFailed, "remove failed: "+kit.RootCause(err))
				continue
			}
			comps.remove(st.Name)
			delete(serving, st.Name)
			continue
		}
		if why, applied := m.legacyEnsureAndCheck(ctx, d, specs[st.Name]); why != "" {
			s.Failed[st.Name+"@"+st.To] = why
			broken[st.Name] = true
			comps.set(st.Name, st.From, kokv1.ComponentFailed, why)
			if applied { // installed but unhealthy; otherwise the previous version still runs
				serving[st.Name] = false
			}
			continue
		}
		comps.set(st.Name, st.To, kokv1.ComponentRunning, "")
		serving[st.Name] = true
	}

	// 3d. Drift check: every wanted package is ensured again when due. The agent acts only where
	// the host differs (a stopped service, an edited config, a removed package) and says what it
	// repaired; each repair becomes an Event on the Machine.
	if len(steps) > 0 || now.Sub(s.LastDriftCheck) >= d.DriftInterval {
		m.legacyDriftCheck(ctx, d, desired, specs, broken, comps, serving)
		s.LastDriftCheck = workflow.Now(ctx)
		r.LastDriftCheck = s.LastDriftCheck
	}

	// 3e. Schedulability: the only place that cordons or uncordons this node.
	healthy := true
	for _, p := range desired {
		healthy = healthy && serving[p.Name]
	}
	decision := DecideSchedulable(SchedulingInput{Gates: gates, Bootstrapped: s.Bootstrapped, ComponentsHealthy: healthy, Isolations: d.Isolations})
	wait := d.DriftInterval
	var res kube.SetNodeSchedulableResult
	err = workflow.ExecuteActivity(m.kubeCtx, kubeActs.SetNodeSchedulable, kube.SetNodeSchedulableParams{Node: m.p.Machine, Schedulable: decision.Schedulable}).Get(ctx, &res)
	switch {
	case err == nil:
		r.Schedulable = decision.Schedulable
		if decision.Schedulable {
			s.Bootstrapped = true
		}
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionSchedulable, decision.Schedulable, schedReason(decision, d), decision.Message()))
	case isNodeNotFound(err):
		s.Stage = StageWaitingForNode
		wait = legacyShortRetry
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionSchedulable, false, kokv1.ReasonNodeNotRegistered,
			"node "+m.p.Machine+" is not registered yet (the kubelet package registers it)"))
	default:
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionSchedulable, false, kokv1.ReasonFailed, kit.RootCause(err)))
	}
	if notes != "" {
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionConditionMapsValid, false, kokv1.ReasonMalformed, notes))
	}

	// 3f. Report the verdict.
	r.Components = comps.list()
	inSync := comps.allRunning(desired) && len(s.Failed) == 0
	r.Conditions = upsert(r.Conditions, cond(kokv1.ConditionProgressing, false, kokv1.ReasonSucceeded, "no step pending"))
	r.Conditions = append(r.Conditions,
		cond(kokv1.MachineConditionPackagesInSync, inSync, syncReason(inSync), syncMessage(inSync, s.Failed, comps.list())),
		cond(kokv1.ConditionReady, inSync, syncReason(inSync), syncMessage(inSync, s.Failed, comps.list())))
	switch {
	case !inSync:
		r.Phase = string(kokv1.MachineDegraded)
	default:
		r.Phase = string(kokv1.MachineReady)
	}
	if s.Stage == StageConverging {
		s.Stage = StageIdle
	}
	m.legacyReport(ctx, r)
	return wait
}

// ensureAndCheck installs or upgrades one package and waits for it to be healthy. It returns why
// it failed ("" on success) and whether the new version was applied: an install or upgrade that
// failed leaves the previous state on the host (the agent rolls back), one that was applied but
// is unhealthy does not.
func (m *legacyRun) legacyEnsureAndCheck(ctx workflow.Context, d kube.MachineDesired, spec hostapi.PackageSpec) (why string, applied bool) {
	var res hostapi.EnsurePackageResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, legacyInstallTimeout), hostActs.EnsurePackage, hostapi.EnsurePackageParams{Spec: spec}).Get(ctx, &res); err != nil {
		return fmt.Sprintf("%s %s: %s", spec.Name, spec.Version, kit.RootCause(err)), false
	}
	var health hostapi.CheckHealthResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, legacyHealthWait), hostActs.CheckHealth, hostapi.CheckHealthParams{Name: spec.Name, Wait: true}).Get(ctx, &health); err != nil {
		return fmt.Sprintf("%s %s: health check: %s", spec.Name, spec.Version, kit.RootCause(err)), true
	}
	if !health.Healthy {
		return fmt.Sprintf("%s %s is unhealthy: %s", spec.Name, spec.Version, health.Message), true
	}
	return "", true
}

func (m *legacyRun) legacyDriftCheck(ctx workflow.Context, d kube.MachineDesired, desired []Package, specs map[string]hostapi.PackageSpec, broken map[string]bool, comps *components, serving map[string]bool) {
	order, err := topoOrder(depsOf(desired))
	if err != nil {
		return // Plan already refused this spec
	}
	for _, name := range order {
		if broken[name] {
			continue
		}
		spec := specs[name]
		var res hostapi.EnsurePackageResult
		if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, legacyInstallTimeout), hostActs.EnsurePackage, hostapi.EnsurePackageParams{Spec: spec}).Get(ctx, &res); err != nil {
			comps.set(name, spec.Version, kokv1.ComponentFailed, "drift check: "+kit.RootCause(err))
			serving[name] = false
			continue
		}
		if res.Action != hostapi.EnsureNone {
			msg := fmt.Sprintf("%s %s: %s", name, spec.Version, strings.Join(res.Repairs, "; "))
			if len(res.Repairs) == 0 {
				msg = fmt.Sprintf("%s %s: %s", name, spec.Version, strings.ToLower(string(res.Action)))
			}
			info := workflow.GetInfo(ctx)
			_ = workflow.ExecuteActivity(m.kubeCtx, kubeActs.RecordMachineEvent, kube.MachineEventParams{
				Machine: m.p.Machine, Key: fmt.Sprintf("%s/%s/%d/%s", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, m.s.Passes, name),
				Type: "Warning", Reason: kokv1.ReasonDriftCorrected, Message: msg, Time: workflow.Now(ctx),
			}).Get(ctx, nil)
		}
		var health hostapi.CheckHealthResult
		if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, legacyHealthWait), hostActs.CheckHealth, hostapi.CheckHealthParams{Name: name, Wait: res.Action != hostapi.EnsureNone}).Get(ctx, &health); err != nil || !health.Healthy {
			why := health.Message
			if err != nil {
				why = kit.RootCause(err)
			}
			comps.set(name, spec.Version, kokv1.ComponentFailed, "unhealthy: "+why)
			serving[name] = false
			continue
		}
		comps.set(name, spec.Version, kokv1.ComponentRunning, "")
		serving[name] = true
	}
}

// teardown removes every package (unless the Machine orphans them) and releases the Machine.
func (m *legacyRun) legacyTeardown(ctx workflow.Context, d kube.MachineDesired) error {
	r := kube.MachineReport{Name: m.p.Machine, ObservedGeneration: d.Generation, Phase: string(kokv1.MachineDeleting), Now: workflow.Now(ctx)}
	m.legacyReport(ctx, r)
	var res kube.SetNodeSchedulableResult
	if err := workflow.ExecuteActivity(m.kubeCtx, kubeActs.SetNodeSchedulable, kube.SetNodeSchedulableParams{Node: m.p.Machine, Schedulable: false}).Get(ctx, &res); err != nil && !isNodeNotFound(err) {
		return err
	}
	if !d.Orphan {
		var facts hostapi.FactsResult
		if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, 30*time.Second), hostActs.Facts).Get(ctx, &facts); err != nil {
			return fmt.Errorf("read host %s before removing its packages: %w", d.Host, err)
		}
		installed := make([]Installed, 0, len(facts.Installed))
		for _, ip := range facts.Installed {
			installed = append(installed, Installed{Name: ip.Name, Version: ip.Version, DependsOn: ip.DependsOn})
		}
		steps, err := Plan(nil, installed)
		if err != nil {
			return err
		}
		for _, st := range steps {
			var rr hostapi.RemovePackageResult
			if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, legacyInstallTimeout), hostActs.RemovePackage, hostapi.RemovePackageParams{Name: st.Name}).Get(ctx, &rr); err != nil {
				return fmt.Errorf("remove %s from host %s: %w", st.Name, d.Host, err)
			}
		}
	}
	return workflow.ExecuteActivity(m.kubeCtx, kubeActs.ReleaseMachine, kube.ReleaseMachineParams{Name: m.p.Machine, DeleteNode: !d.Orphan}).Get(ctx, nil)
}

// report publishes progress; a failure to write status never stops the work itself.
func (m *legacyRun) legacyReport(ctx workflow.Context, r kube.MachineReport) {
	r.Now = workflow.Now(ctx)
	_ = workflow.ExecuteActivity(m.kubeCtx, kubeActs.ReportMachineStatus, r).Get(ctx, nil)
}
