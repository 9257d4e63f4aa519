package machine

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/host"
	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
)

// Wire names: changing one breaks running workflows and the tools that signal them.
const (
	// WorkflowName is the Machine entity workflow's type.
	WorkflowName = "Machine"
	// SignalReconcile wakes the workflow to read the Machine again (spec, gates, isolations).
	// Watchers send it on every change; many signals in a row are handled as one.
	SignalReconcile = "reconcile"
	// QueryState returns the workflow's State.
	QueryState = "state"
)

// ReconcileSignal is SignalReconcile's payload. It is optional: an empty signal (from an older
// watcher, the Temporal CLI or the Web UI) means "read the Machine again".
type ReconcileSignal struct {
	// Inputs is the watcher's digest of everything the workflow reads (the Machine's spec and
	// annotations, its node's Condition ConfigMaps, whether its Node exists). The workflow
	// reports the newest one it has acted on as status.observedInputs, so a restarted watcher
	// signals only Machines whose inputs changed meanwhile.
	Inputs string
}

// WorkflowID is the ID of the Machine workflow of machine in cluster: Machine/<cluster>/<name>.
func WorkflowID(cluster, machine string) string { return "Machine/" + cluster + "/" + machine }

// Params starts (or continues) the workflow of one Machine.
type Params struct {
	// Cluster names the business cluster; its machine operator serves the kube activities.
	Cluster string
	// Machine is the Machine's (and node's) name.
	Machine string
	// State is carried across continue-as-new.
	State State
}

// Stage names where the workflow stands; it is shown by QueryState and explains every wait.
type Stage string

const (
	StageReading         Stage = "Reading"
	StageConverging      Stage = "Converging"
	StageWaitingForSpec  Stage = "WaitingForSpec"  // unresolvable spec: waits for an edit
	StageWaitingForAgent Stage = "WaitingForAgent" // the host's agent does not poll its queue
	StageWaitingForNode  Stage = "WaitingForNode"  // packages done, the Node is not registered yet
	StagePaused          Stage = "Paused"          // spec.paused
	StageIdle            Stage = "Idle"            // converged; next drift check on a timer
	StageTearingDown     Stage = "TearingDown"     // deleting
)

// State is everything the workflow remembers between iterations and runs.
type State struct {
	Stage Stage
	// Bootstrapped: the node has been schedulable once; Bootstrap-mode gates no longer hold it.
	Bootstrapped bool
	// Generation is the Machine generation the last pass acted on.
	Generation int64
	// Failed holds packages whose install failed for good at this generation, "name@version" to
	// why. They are not retried until the spec changes: a bad checksum never heals by itself.
	Failed map[string]string
	// LastDriftCheck is when every package was last compared with the host.
	LastDriftCheck time.Time
	// Passes counts iterations in this run, to continue-as-new before history grows large.
	Passes int
}

// Timeouts and retries. Each is named so a reader sees why it is what it is.
var (
	// kubeOptions: API calls are short; a control plane that blips is retried for as long as it
	// takes (the workflow shows the pending activity in the Web UI meanwhile).
	kubeRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second}
	// agentScheduleToStart: how long a host task may wait for an agent to pick it up before the
	// workflow reports the agent as not connected (it tries again later).
	agentScheduleToStart = time.Minute
	// installTimeout bounds one install/upgrade (download, unpack, start); the agent heartbeats,
	// so a killed agent is noticed after installHeartbeat and the retry resumes idempotently.
	installTimeout   = 15 * time.Minute
	installHeartbeat = 30 * time.Second
	hostRetry        = &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5}
	// healthWait bounds waiting for a freshly started package to pass its health check.
	healthWait = 5 * time.Minute
	// shortRetry: how soon to look again when waiting on something outside the spec (an agent to
	// connect, the kubelet to register the Node).
	shortRetry = 10 * time.Second
	// maxPasses: continue-as-new after this many passes (each pass is a few dozen events).
	maxPasses = 100
)

var (
	kubeActs *kube.Activities
	hostActs *host.Activities
)

// Workflow keeps one Machine's host at its spec, for as long as the Machine exists.
func Workflow(ctx workflow.Context, p Params) error {
	s := p.State
	if s.Failed == nil {
		s.Failed = map[string]string{}
	}
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return s, nil }); err != nil {
		return err
	}
	reconcile := workflow.GetSignalChannel(ctx, SignalReconcile)
	m := &machineRun{p: p, s: &s, kubeCtx: workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue.ClusterTaskQueue(p.Cluster),
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         kubeRetry,
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
			return m.teardown(ctx, d)
		}

		// 3. Drive the host to the spec and decide schedulability.
		wait := m.pass(ctx, d)
		s.Passes++

		// 4. Wait for a change or the next drift check, then go again. Signals that arrived
		// meanwhile are drained into this one wake-up.
		if s.Passes >= maxPasses || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			if !drain(reconcile) {
				s.Passes = 0
				return workflow.NewContinueAsNewError(ctx, WorkflowName, Params{Cluster: p.Cluster, Machine: p.Machine, State: s})
			}
			continue
		}
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(reconcile, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		timerCtx, cancelTimer := workflow.WithCancel(ctx)
		sel.AddFuture(workflow.NewTimer(timerCtx, wait), func(workflow.Future) {})
		sel.Select(ctx)
		cancelTimer()
		drain(reconcile)
	}
}

// drain consumes every pending signal and says whether there were any.
func drain(c workflow.ReceiveChannel) bool {
	any := false
	for c.ReceiveAsync(nil) {
		any = true
	}
	return any
}

// machineRun is one workflow run's context for the pass helpers.
type machineRun struct {
	p       Params
	s       *State
	kubeCtx workflow.Context
}

func (m *machineRun) hostCtx(ctx workflow.Context, d kube.MachineDesired, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              queue.HostTaskQueue(d.Host),
		ScheduleToStartTimeout: agentScheduleToStart,
		StartToCloseTimeout:    timeout,
		HeartbeatTimeout:       installHeartbeat,
		RetryPolicy:            hostRetry,
	})
}

// pass is one convergence pass; it returns how long to wait before the next one.
func (m *machineRun) pass(ctx workflow.Context, d kube.MachineDesired) time.Duration {
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
		m.report(ctx, r)
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
		m.report(ctx, r)
		return d.DriftInterval
	}

	// 3b. Ask the host what it has. An agent that does not answer is reported, not waited on.
	s.Stage = StageConverging
	var facts hostapi.FactsResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, 30*time.Second), hostActs.Facts).Get(ctx, &facts); err != nil {
		s.Stage = StageWaitingForAgent
		r.Phase = string(kokv1.MachineNotReady)
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionAgentConnected, false, kokv1.ReasonNoPoller,
			fmt.Sprintf("the agent of host %s did not answer on task queue %s: %s", d.Host, queue.HostTaskQueue(d.Host), rootCause(err))))
		m.report(ctx, r)
		return shortRetry
	}
	r.Facts = &facts
	r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionAgentConnected, true, "Polling", "the agent of host "+d.Host+" answers"))

	installed := make([]Installed, 0, len(facts.Installed))
	for _, ip := range facts.Installed {
		installed = append(installed, Installed{Name: ip.Name, Version: ip.Version, DependsOn: ip.DependsOn})
	}
	steps, err := Plan(desired, installed)
	if err != nil {
		s.Stage = StageWaitingForSpec
		r.Phase = string(kokv1.MachineBlocked)
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionPackagesInSync, false, "InvalidSpec", err.Error()+"; nothing on the host was changed"))
		m.report(ctx, r)
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
		m.report(ctx, r)

		if st.Action == ActionRemove {
			var res hostapi.RemovePackageResult
			if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, installTimeout), hostActs.RemovePackage, hostapi.RemovePackageParams{Name: st.Name}).Get(ctx, &res); err != nil {
				comps.set(st.Name, st.From, kokv1.ComponentFailed, "remove failed: "+rootCause(err))
				continue
			}
			comps.remove(st.Name)
			delete(serving, st.Name)
			continue
		}
		if why, applied := m.ensureAndCheck(ctx, d, specs[st.Name]); why != "" {
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
		m.driftCheck(ctx, d, desired, specs, broken, comps, serving)
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
		wait = shortRetry
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionSchedulable, false, "NodeNotRegistered",
			"node "+m.p.Machine+" is not registered yet (the kubelet package registers it)"))
	default:
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionSchedulable, false, kokv1.ReasonFailed, rootCause(err)))
	}
	if notes != "" {
		r.Conditions = append(r.Conditions, cond("ConditionMapsValid", false, "Malformed", notes))
	}

	// 3f. Report the verdict.
	r.Components = comps.list()
	inSync := comps.allRunning(desired) && len(s.Failed) == 0
	r.Conditions = upsert(r.Conditions, cond(kokv1.ConditionProgressing, false, kokv1.ReasonSucceeded, "no step pending"))
	r.Conditions = append(r.Conditions,
		cond(kokv1.MachineConditionPackagesInSync, inSync, syncReason(inSync), syncMessage(inSync, s.Failed, comps)),
		cond(kokv1.ConditionReady, inSync, syncReason(inSync), syncMessage(inSync, s.Failed, comps)))
	switch {
	case !inSync:
		r.Phase = string(kokv1.MachineDegraded)
	default:
		r.Phase = string(kokv1.MachineReady)
	}
	if s.Stage == StageConverging {
		s.Stage = StageIdle
	}
	m.report(ctx, r)
	return wait
}

// ensureAndCheck installs or upgrades one package and waits for it to be healthy. It returns why
// it failed ("" on success) and whether the new version was applied: an install or upgrade that
// failed leaves the previous state on the host (the agent rolls back), one that was applied but
// is unhealthy does not.
func (m *machineRun) ensureAndCheck(ctx workflow.Context, d kube.MachineDesired, spec hostapi.PackageSpec) (why string, applied bool) {
	var res hostapi.EnsurePackageResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, installTimeout), hostActs.EnsurePackage, hostapi.EnsurePackageParams{Spec: spec}).Get(ctx, &res); err != nil {
		return fmt.Sprintf("%s %s: %s", spec.Name, spec.Version, rootCause(err)), false
	}
	var health hostapi.CheckHealthResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, healthWait), hostActs.CheckHealth, hostapi.CheckHealthParams{Name: spec.Name, Wait: true}).Get(ctx, &health); err != nil {
		return fmt.Sprintf("%s %s: health check: %s", spec.Name, spec.Version, rootCause(err)), true
	}
	if !health.Healthy {
		return fmt.Sprintf("%s %s is unhealthy: %s", spec.Name, spec.Version, health.Message), true
	}
	return "", true
}

func (m *machineRun) driftCheck(ctx workflow.Context, d kube.MachineDesired, desired []Package, specs map[string]hostapi.PackageSpec, broken map[string]bool, comps *components, serving map[string]bool) {
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
		if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, installTimeout), hostActs.EnsurePackage, hostapi.EnsurePackageParams{Spec: spec}).Get(ctx, &res); err != nil {
			comps.set(name, spec.Version, kokv1.ComponentFailed, "drift check: "+rootCause(err))
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
		if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, healthWait), hostActs.CheckHealth, hostapi.CheckHealthParams{Name: name, Wait: res.Action != hostapi.EnsureNone}).Get(ctx, &health); err != nil || !health.Healthy {
			why := health.Message
			if err != nil {
				why = rootCause(err)
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
func (m *machineRun) teardown(ctx workflow.Context, d kube.MachineDesired) error {
	r := kube.MachineReport{Name: m.p.Machine, ObservedGeneration: d.Generation, Phase: string(kokv1.MachineDeleting), Now: workflow.Now(ctx)}
	m.report(ctx, r)
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
			if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, installTimeout), hostActs.RemovePackage, hostapi.RemovePackageParams{Name: st.Name}).Get(ctx, &rr); err != nil {
				return fmt.Errorf("remove %s from host %s: %w", st.Name, d.Host, err)
			}
		}
	}
	return workflow.ExecuteActivity(m.kubeCtx, kubeActs.ReleaseMachine, kube.ReleaseMachineParams{Name: m.p.Machine, DeleteNode: !d.Orphan}).Get(ctx, nil)
}

// report publishes progress; a failure to write status never stops the work itself.
func (m *machineRun) report(ctx workflow.Context, r kube.MachineReport) {
	r.Now = workflow.Now(ctx)
	_ = workflow.ExecuteActivity(m.kubeCtx, kubeActs.ReportMachineStatus, r).Get(ctx, nil)
}

func gatesFor(d kube.MachineDesired) []Gate {
	reported := map[string]kube.ReportedCondition{}
	for _, c := range d.Conditions {
		reported[c.Type] = c
	}
	var gates []Gate
	for _, g := range d.Gates {
		gate := Gate{Type: g.Type, Mode: GateMode(g.Mode)}
		if c, ok := reported[g.Type]; ok {
			gate.Status, gate.Message, gate.Source = c.Status, c.Message, c.Source
		} else {
			gate.Source = fmt.Sprintf("no ConfigMap in %s labelled %s=%s reports it", kube.ConditionNamespace, kube.LabelNode, d.Host)
		}
		gates = append(gates, gate)
	}
	return gates
}

func cond(typ string, ok bool, reason, msg string) kube.ConditionReport {
	status := "False"
	if ok {
		status = "True"
	}
	return kube.ConditionReport{Type: typ, Status: status, Reason: reason, Message: msg}
}

func upsert(cs []kube.ConditionReport, c kube.ConditionReport) []kube.ConditionReport {
	for i := range cs {
		if cs[i].Type == c.Type {
			cs[i] = c
			return cs
		}
	}
	return append(cs, c)
}

func schedReason(dec SchedulingDecision, d kube.MachineDesired) string {
	switch {
	case dec.Schedulable:
		return "AllGatesPassed"
	case len(d.Isolations) > 0:
		return kokv1.ReasonIsolated
	default:
		return kokv1.ReasonReadinessGateNotTrue
	}
}

func syncReason(ok bool) string {
	if ok {
		return kokv1.ReasonSucceeded
	}
	return kokv1.ReasonFailed
}

func syncMessage(ok bool, failed map[string]string, comps *components) string {
	if ok {
		return "every package runs at its spec version and is healthy"
	}
	var why []string
	for _, msg := range sortedMap(failed) {
		why = append(why, msg)
	}
	for _, c := range comps.list() {
		if c.Phase != string(kokv1.ComponentRunning) && c.Message != "" && !contains(why, c.Message) {
			why = append(why, c.Name+": "+c.Message)
		}
	}
	if len(why) == 0 {
		return "packages are not all running"
	}
	return strings.Join(why, "; ")
}

// isNodeNotFound: the kubelet has not registered the Node (yet, or any more).
func isNodeNotFound(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == kube.ErrTypeNodeNotFound
}

func rootCause(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Error()
	}
	var to *temporal.TimeoutError
	if errors.As(err, &to) {
		return "timed out (" + to.TimeoutType().String() + ")"
	}
	return err.Error()
}

func dependsOnBroken(deps []string, broken map[string]bool) string {
	for _, d := range deps {
		if broken[d] {
			return d
		}
	}
	return ""
}

func versionOf(s Step) string {
	if s.Action == ActionRemove {
		return s.From
	}
	return s.To
}

func phaseOf(a Action) kokv1.ComponentPhase {
	switch a {
	case ActionInstall:
		return kokv1.ComponentInstalling
	case ActionRemove:
		return kokv1.ComponentRemoving
	default:
		return kokv1.ComponentUpgrading
	}
}

func depsOf(ps []Package) map[string][]string {
	out := map[string][]string{}
	for _, p := range ps {
		out[p.Name] = p.DependsOn
	}
	return out
}

// sortedMap iterates a map in key order, so workflow code never depends on map order.
func sortedMap(m map[string]string) func(func(string, string) bool) {
	return func(yield func(string, string) bool) {
		for _, k := range sortedKeys(m) {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// components is the per-package status the workflow reports, kept in name order.
type components struct {
	byName map[string]kube.ComponentReport
}

func componentsFrom(desired []Package, installed []Installed) *components {
	c := &components{byName: map[string]kube.ComponentReport{}}
	have := map[string]string{}
	for _, i := range installed {
		have[i.Name] = i.Version
	}
	for _, p := range desired {
		if v, ok := have[p.Name]; ok && v == p.Version {
			c.byName[p.Name] = kube.ComponentReport{Name: p.Name, Version: v, Phase: string(kokv1.ComponentRunning)}
		} else {
			c.byName[p.Name] = kube.ComponentReport{Name: p.Name, Version: v, Phase: string(kokv1.ComponentPending)}
		}
	}
	for _, i := range installed {
		if _, ok := c.byName[i.Name]; !ok {
			c.byName[i.Name] = kube.ComponentReport{Name: i.Name, Version: i.Version, Phase: string(kokv1.ComponentRunning), Message: "not in spec: to be removed"}
		}
	}
	return c
}

func (c *components) set(name, version string, phase kokv1.ComponentPhase, msg string) {
	c.byName[name] = kube.ComponentReport{Name: name, Version: version, Phase: string(phase), Message: msg}
}

func (c *components) remove(name string) { delete(c.byName, name) }

func (c *components) list() []kube.ComponentReport {
	out := make([]kube.ComponentReport, 0, len(c.byName))
	for _, name := range sortedKeys(c.byName) {
		out = append(out, c.byName[name])
	}
	return out
}

func (c *components) allRunning(desired []Package) bool {
	for _, p := range desired {
		got, ok := c.byName[p.Name]
		if !ok || got.Phase != string(kokv1.ComponentRunning) || got.Version != p.Version {
			return false
		}
	}
	return true
}
