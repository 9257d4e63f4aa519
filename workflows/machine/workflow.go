package machine

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/host"
	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/contract/queue"
	"kok.dev/workflows/internal/kit"
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

// changeAtRest gates the loop that costs almost nothing at rest (one InspectHost per drift
// interval, status written only on change, absent agents waited for). Runs that started before
// it keep the legacy loop (legacy.go) until their next continue-as-new.
const changeAtRest = "machine-at-rest-v2"

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
	StageReading               Stage = "Reading"
	StageConverging            Stage = "Converging"
	StageWaitingForSpec        Stage = "WaitingForSpec"             // unresolvable spec: waits for an edit
	StageWaitingForAgent       Stage = "WaitingForAgent"            // the host's agent does not answer: waits with backoff
	StageWaitingForArtifact    Stage = "WaitingForArtifact"         // an artifact cannot be downloaded for now: waits with backoff
	StageWaitingForOperator    Stage = "WaitingForOperator"         // no machine operator serves the cluster's queue: waits with backoff
	StageWaitingForNode        Stage = "WaitingForNode"             // packages done, the Node is not registered yet
	StageRetrying              Stage = "Retrying"                   // a step failed in a way that may pass: tried again with backoff
	StagePaused                Stage = "Paused"                     // spec.paused
	StageIdle                  Stage = "Idle"                       // converged; next drift check on a timer
	StageTearingDown           Stage = "TearingDown"                // deleting
	StageTearingDownWaitingFor Stage = "TearingDownWaitingForAgent" // deleting; the agent does not answer (orphan to give up on the host)
)

// StageTearingDownWaitingForAgent is the teardown's wait for an absent agent. A person ends it
// by letting the host be: deletionPolicy Orphan, or the kok.dev/orphan annotation.
const StageTearingDownWaitingForAgent = StageTearingDownWaitingFor

// State is everything the workflow remembers between iterations and runs.
type State struct {
	Stage Stage
	// Bootstrapped: the node has been schedulable once; Bootstrap-mode gates no longer hold it.
	Bootstrapped bool
	// Generation is the Machine generation the last pass acted on.
	Generation int64
	// Failed holds packages whose install failed for good at this generation, "name@version" to
	// why: a checksum mismatch, a bad spec, an install the agent rolled back, or a health check
	// that failed after the install. They are not retried until the spec changes or a person
	// sets a new kok.dev/retry value. An absent agent or artifact never lands here.
	Failed map[string]string
	// LastDriftCheck is when the host was last compared with the spec.
	LastDriftCheck time.Time
	// Passes counts iterations in this run, to continue-as-new before history grows large.
	Passes int

	// UID is the Machine object this workflow acts for; another UID under the same name is a
	// new Machine.
	UID string
	// RetryHandled is the last kok.dev/retry value acted on.
	RetryHandled string
	// RepairSeq is the newest agent repair already recorded as an Event.
	RepairSeq int64
	// ReportHash identifies the status last written (reportHash): an equal report is not sent.
	ReportHash string
	// Sched is the schedulability last applied to the Node (nil: none yet, or the Node was
	// missing).
	Sched *schedVerdict
	// Components are the packages as last seen, reported while the agent is away.
	Components []kube.ComponentReport
	// Facts are the host's OS, kernel and arch as last reported.
	Facts *hostapi.FactsResult
	// Inputs is the newest ReconcileSignal.Inputs received.
	Inputs string
	// PendingReconcile: a signal arrived as the run continued as new; the next run treats its
	// first pass as signalled.
	PendingReconcile bool
	// Waits counts consecutive passes that waited, for their backoff.
	Waits int
	// SettledHost and SettledFor: the host digest at which a full pass changed nothing while
	// the spec's digest was SettledFor (a package remembered as failed keeps them apart). Such a
	// host is at rest too: the full pass is not repeated every interval.
	SettledHost, SettledFor string
}

// Timeouts and retries. Each is named so a reader sees why it is what it is.
var (
	// kubeScheduleToStart: the cluster's machine operator serves the kube activities; when none
	// polls (the cluster is gone or its operator is down), the workflow waits in
	// WaitingForOperator rather than block silently.
	kubeScheduleToStart = 2 * time.Minute
	// kubeRetry: API calls are short; a blip is retried for about three minutes before the pass
	// waits and tries again with backoff.
	kubeRetry = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second, MaximumAttempts: 10}
	// reportScheduleToClose and reportRetry bound a status write: it never holds the loop; an
	// unwritten report is written at the next pass (its hash was not kept).
	reportScheduleToClose = 90 * time.Second
	reportRetry           = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second, MaximumAttempts: 3}
	// agentScheduleToStart: how long a host task may wait for an agent to pick it up before the
	// workflow counts the agent absent (it waits for it with backoff).
	agentScheduleToStart = time.Minute
	// installTimeout bounds one install/upgrade (download, unpack, start); the agent heartbeats,
	// so a killed agent is noticed after installHeartbeat and the retry resumes idempotently.
	installTimeout   = 15 * time.Minute
	installHeartbeat = 30 * time.Second
	hostRetry        = &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, MaximumAttempts: 5}
	// inspectTimeout and inspectRetry: InspectHost only reads agent state. An agent too old to
	// serve it answers ActivityNotRegisteredError, which retrying cannot fix: that pass falls
	// back to the full drift check at once.
	inspectTimeout = 30 * time.Second
	inspectRetry   = &temporal.RetryPolicy{InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumAttempts: 3, NonRetryableErrorTypes: []string{errTypeNotRegistered}}
	// healthWait bounds waiting for a freshly started package to pass its health check.
	healthWait = 5 * time.Minute
	// waitBase and waitMax: the backoff of every wait outside the spec (an agent, an artifact,
	// an operator, a Node): 10 s doubling to 5 min, jittered per Machine.
	waitBase = 10 * time.Second
	waitMax  = 5 * time.Minute
	// maxPasses: continue-as-new after this many passes. At rest a pass is ~11 events, so 300
	// passes (about 3 days at 15 min) stay under the server's 4,096-event suggestion.
	maxPasses = 300
)

// errTypeNotRegistered is the error type the Go SDK reports for an activity the worker does not
// register (its ActivityNotRegisteredError): an agent of an older release and InspectHost.
const errTypeNotRegistered = "ActivityNotRegisteredError"

// errTypeArtifactUnavailable: the artifact server cannot serve the artifact now. Retryable, and
// waited for.
const errTypeArtifactUnavailable = hostapi.ErrTypeArtifactUnavailable

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
	if workflow.GetVersion(ctx, changeAtRest, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return legacyWorkflow(ctx, p, &s)
	}
	return newRun(ctx, p, &s).loop(ctx)
}

// machineRun is one workflow run's context for the pass helpers.
type machineRun struct {
	p         Params
	s         *State
	kubeCtx   workflow.Context
	reportCtx workflow.Context
	reconcile workflow.ReceiveChannel
	// inputs is s.Inputs as it was when the Machine was last read: what status.observedInputs
	// may claim.
	inputs string
}

func newRun(ctx workflow.Context, p Params, s *State) *machineRun {
	q := queue.ClusterTaskQueue(p.Cluster)
	return &machineRun{
		p: p, s: s,
		reconcile: workflow.GetSignalChannel(ctx, SignalReconcile),
		kubeCtx: workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue: q, ScheduleToStartTimeout: kubeScheduleToStart, StartToCloseTimeout: 30 * time.Second, RetryPolicy: kubeRetry,
		}),
		reportCtx: workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			TaskQueue: q, ScheduleToCloseTimeout: reportScheduleToClose, StartToCloseTimeout: 30 * time.Second, RetryPolicy: reportRetry,
		}),
	}
}

// loop is the Machine's life: read when told (or at the start of a run), look at the host every
// drift interval, act only on a difference.
func (m *machineRun) loop(ctx workflow.Context) error {
	s := m.s
	needRead := true                // every run starts from the Machine as it is now
	signalled := s.PendingReconcile // a signal that arrived as the last run ended
	s.PendingReconcile = false
	var d kube.MachineDesired
	for {
		var wait time.Duration
		if needRead {
			// 1. Read the Machine with every reference resolved.
			s.Stage = StageReading
			read, err := m.readMachine(ctx)
			switch {
			case err != nil:
				s.Stage = StageWaitingForOperator
				wait = m.backoff()
			case !read.Found:
				return nil
			default:
				d, needRead = read, false
				m.adopt(d)
			}
		}
		if !needRead {
			// 2. Deleting: tear down and let the object go.
			if d.Deleting {
				if m.teardown(ctx, d) {
					return nil
				}
				needRead = true // the Machine went away or was created anew meanwhile
				continue
			}
			// 3. Look at the host, drive it to the spec where it differs, decide schedulability.
			wait = m.pass(ctx, d, signalled)
			signalled = false
		}
		s.Passes++

		// 4. Continue as new when due, always: a signal pending now is carried as
		// PendingReconcile, so a steady signal stream cannot keep the run from ending.
		if s.Passes >= maxPasses || workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			s.PendingReconcile = m.drain() || signalled
			s.Passes = 0
			return workflow.NewContinueAsNewError(ctx, WorkflowName, Params{Cluster: m.p.Cluster, Machine: m.p.Machine, State: *s})
		}
		// 5. Wait for a change or the next look, then go again. Signals that arrived meanwhile
		// are drained into this one wake-up.
		if m.sleep(ctx, wait) {
			needRead, signalled = true, true
		}
	}
}

// readMachine runs ReadMachine; an error means no operator served it (or the API server kept
// failing): the caller waits.
func (m *machineRun) readMachine(ctx workflow.Context) (kube.MachineDesired, error) {
	var d kube.MachineDesired
	inputs := m.s.Inputs
	err := workflow.ExecuteActivity(m.kubeCtx, kubeActs.ReadMachine, kube.ReadMachineParams{Name: m.p.Machine}).Get(ctx, &d)
	if err == nil {
		m.inputs = inputs
	}
	return d, err
}

// adopt takes what was read: a new object (UID), a new generation or a new retry request each
// forget what was remembered as failed.
func (m *machineRun) adopt(d kube.MachineDesired) {
	s := m.s
	if s.UID != "" && d.UID != "" && d.UID != s.UID {
		// The Machine was deleted and created again under this name: nothing known of the old
		// object applies to the new one.
		// RepairSeq is the host's, not the object's: the repairs already recorded stay recorded.
		*s = State{Stage: s.Stage, Passes: s.Passes, Inputs: s.Inputs, RepairSeq: s.RepairSeq, Failed: map[string]string{}}
	}
	s.UID = d.UID
	if d.Generation != s.Generation {
		s.Generation, s.Failed = d.Generation, map[string]string{}
		s.SettledHost, s.SettledFor = "", ""
	}
	if d.Retry != "" && d.Retry != s.RetryHandled {
		s.RetryHandled, s.Failed = d.Retry, map[string]string{}
		s.SettledHost, s.SettledFor = "", ""
	}
}

// sleep waits for a signal or for d, and says whether a signal came. Signals already pending
// end it at once, with no timer.
func (m *machineRun) sleep(ctx workflow.Context, d time.Duration) bool {
	if m.drain() {
		return true
	}
	woke := false
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(m.reconcile, func(workflow.ReceiveChannel, bool) { woke = true })
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	sel.AddFuture(workflow.NewTimer(timerCtx, d), func(workflow.Future) {})
	sel.Select(ctx)
	cancelTimer()
	return m.drain() || woke
}

// drain consumes pending signals, keeping the newest inputs digest.
func (m *machineRun) drain() bool {
	return kit.DrainInto(m.reconcile, func(sig *ReconcileSignal) {
		if sig != nil && sig.Inputs != "" {
			m.s.Inputs = sig.Inputs
		}
	})
}

// backoff is the next wait of a pass that waits for something outside the spec.
func (m *machineRun) backoff() time.Duration {
	d := kit.Backoff(waitBase, waitMax, m.p.Machine, m.s.Waits)
	m.s.Waits++
	return d
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

// classify says whether a host activity's error means waiting (and for what) or a failure to
// remember: only a checksum mismatch, a bad spec and a failed install are failures.
func classify(err error) waitKind {
	switch {
	case kit.IsTimeout(err):
		return waitAgent
	case kit.ErrorType(err) == errTypeArtifactUnavailable:
		return waitArtifact
	}
	switch kit.ErrorType(err) {
	case hostapi.ErrTypeChecksumMismatch, hostapi.ErrTypeBadSpec, hostapi.ErrTypeInstallFailed:
		return waitNone
	}
	return waitRetry
}

func (m *machineRun) waitMessage(w waitKind, d kube.MachineDesired, err error) string {
	switch w {
	case waitAgent:
		return fmt.Sprintf("the agent of host %s did not answer on task queue %s (%s); waiting for it", d.Host, queue.HostTaskQueue(d.Host), kit.RootCause(err))
	case waitArtifact:
		return "an artifact cannot be downloaded now (" + kit.RootCause(err) + "); trying again"
	default:
		return kit.RootCause(err) + "; trying again"
	}
}

// passResult is how a pass ended.
type passResult struct {
	wait    waitKind
	message string
}

// pass is one look at the host; it returns how long to wait before the next one. signalled: the
// Machine was read after a signal, so schedulability is applied even when it did not change.
func (m *machineRun) pass(ctx workflow.Context, d kube.MachineDesired, signalled bool) time.Duration {
	s := m.s
	o := m.observation(d)
	// 3a. Nothing is touched while paused or while the spec cannot be resolved.
	if d.Paused {
		s.Stage, s.Waits = StagePaused, 0
		m.report(ctx, composeStatus(o))
		return m.interval(d)
	}
	if len(d.ResolveErrors) > 0 {
		s.Stage, s.Waits = StageWaitingForSpec, 0
		m.report(ctx, composeStatus(o))
		return m.interval(d)
	}

	// 3b. Ask the agent how the host compares with the spec: one activity at rest.
	s.Stage = StageConverging
	// DesiredDigest is JSON over sorted specs: deterministic (see reportHash).
	//workflowcheck:ignore
	digest := hostapi.DesiredDigest(d.Packages)
	var res hostapi.InspectHostResult
	err := workflow.ExecuteActivity(m.inspectCtx(ctx, d), hostapi.ActivityInspectHost,
		hostapi.InspectHostParams{Digest: digest, RepairsSince: s.RepairSeq}).Get(ctx, &res)
	var out passResult
	var serving map[string]bool
	switch {
	case err == nil:
		o.AgentAnswered = true
		m.recordRepairs(ctx, res)
		s.LastDriftCheck = workflow.Now(ctx)
		if res.Digest == digest || (res.Digest == s.SettledHost && digest == s.SettledFor) {
			s.Components, serving = atRestComponents(d.Packages, res, s.Failed)
			break
		}
		var changed bool
		out, serving, changed = m.converge(ctx, d, &o)
		if out.wait == waitNone && !changed && o.PlanError == "" {
			s.SettledHost, s.SettledFor = res.Digest, digest
		}
	case kit.ErrorType(err) == errTypeNotRegistered:
		// An agent of an older release: today's full drift check, every pass, until it is
		// upgraded.
		out, serving, _ = m.converge(ctx, d, &o)
	default:
		w := classify(err)
		if w == waitNone {
			w = waitRetry
		}
		out = passResult{wait: w, message: m.waitMessage(w, d, err)}
	}
	if o.PlanError != "" {
		s.Stage, s.Waits = StageWaitingForSpec, 0
		m.report(ctx, composeStatus(o))
		return m.interval(d)
	}
	if out.wait != waitNone {
		return m.waitFor(ctx, o, out)
	}

	// 3c. Schedulability: the only place that cordons or uncordons this node, called when the
	// decision changes or the Machine was read after a signal.
	healthy := true
	for _, p := range d.Packages {
		healthy = healthy && serving[p.Name]
	}
	dec := DecideSchedulable(SchedulingInput{Gates: gatesFor(d), Bootstrapped: s.Bootstrapped, ComponentsHealthy: healthy, Isolations: d.Isolations})
	v := schedVerdictOf(dec, d)
	if signalled || s.Sched == nil || s.Sched.Schedulable != v.Schedulable {
		var sr kube.SetNodeSchedulableResult
		err := workflow.ExecuteActivity(m.kubeCtx, kubeActs.SetNodeSchedulable, kube.SetNodeSchedulableParams{Node: m.p.Machine, Schedulable: dec.Schedulable}).Get(ctx, &sr)
		switch {
		case isNodeNotFound(err):
			s.Sched = nil
			o = m.observation(d)
			o.AgentAnswered = true
			return m.waitFor(ctx, o, passResult{wait: waitNode, message: "node " + m.p.Machine + " is not registered yet (the kubelet package registers it)"})
		case err != nil:
			o.AgentAnswered = true
			return m.waitFor(ctx, o, passResult{wait: waitOperator, message: "cordon or uncordon node " + m.p.Machine + ": " + kit.RootCause(err)})
		}
		if dec.Schedulable {
			s.Bootstrapped = true
		}
	}
	s.Sched = &v

	// 3d. Report the verdict (written only when it differs from the last one).
	s.Stage, s.Waits = StageIdle, 0
	o = m.observation(d)
	o.AgentAnswered = true
	m.report(ctx, composeStatus(o))
	return m.interval(d)
}

// waitFor reports a pass that stopped to wait and returns the backoff.
func (m *machineRun) waitFor(ctx workflow.Context, o observation, out passResult) time.Duration {
	switch out.wait {
	case waitAgent:
		m.s.Stage = StageWaitingForAgent
	case waitArtifact:
		m.s.Stage = StageWaitingForArtifact
	case waitOperator:
		m.s.Stage = StageWaitingForOperator
	case waitNode:
		m.s.Stage = StageWaitingForNode
	default:
		m.s.Stage = StageRetrying
	}
	o.Wait, o.WaitMessage = out.wait, out.message
	o.Components = m.s.Components
	m.report(ctx, composeStatus(o))
	return m.backoff()
}

// interval is the jittered drift interval: a fleet started together does not stay in step.
func (m *machineRun) interval(d kube.MachineDesired) time.Duration {
	every := d.DriftInterval
	if every <= 0 {
		every = kube.DefaultDriftInterval
	}
	return kit.Jitter(every, m.p.Machine, m.s.Passes)
}

func (m *machineRun) observation(d kube.MachineDesired) observation {
	return observation{
		Machine: m.p.Machine, Desired: d, Components: m.s.Components, Failed: m.s.Failed,
		Sched: m.s.Sched, Facts: m.s.Facts, Inputs: m.inputs,
	}
}

func (m *machineRun) inspectCtx(ctx workflow.Context, d kube.MachineDesired) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:              queue.HostTaskQueue(d.Host),
		ScheduleToStartTimeout: agentScheduleToStart,
		StartToCloseTimeout:    inspectTimeout,
		RetryPolicy:            inspectRetry,
	})
}

// recordRepairs turns the agent's local repairs into one Event (one call per batch, keyed by
// the repairs' sequence numbers, so a retry writes it once).
func (m *machineRun) recordRepairs(ctx workflow.Context, res hostapi.InspectHostResult) {
	if len(res.Repairs) == 0 {
		if res.RepairSeq > m.s.RepairSeq {
			m.s.RepairSeq = res.RepairSeq
		}
		return
	}
	var what []string
	for _, r := range res.Repairs {
		what = append(what, fmt.Sprintf("%s %s: %s", r.Package, r.Version, r.What))
	}
	first, last := res.Repairs[0].Seq, res.Repairs[len(res.Repairs)-1].Seq
	err := workflow.ExecuteActivity(m.reportCtx, kubeActs.RecordMachineEvent, kube.MachineEventParams{
		Machine: m.p.Machine, Key: fmt.Sprintf("%s/%s/repairs/%d-%d", workflow.GetInfo(ctx).WorkflowExecution.ID, m.s.UID, first, last),
		Type: "Warning", Reason: kokv1.ReasonDriftCorrected, Message: strings.Join(what, "; "), Time: workflow.Now(ctx),
	}).Get(ctx, nil)
	if err == nil { // otherwise the agent reports them again next time
		m.s.RepairSeq = max(res.RepairSeq, last)
	}
}

// report writes status when it differs from what was last written; a failed write is retried at
// the next pass.
func (m *machineRun) report(ctx workflow.Context, r kube.MachineReport) {
	h := reportHash(r)
	if h == m.s.ReportHash {
		return
	}
	r.Now, r.LastDriftCheck = workflow.Now(ctx), m.s.LastDriftCheck
	if err := workflow.ExecuteActivity(m.reportCtx, kubeActs.ReportMachineStatus, r).Get(ctx, nil); err == nil {
		m.s.ReportHash = h
	}
}
