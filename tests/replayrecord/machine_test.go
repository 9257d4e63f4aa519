package replayrecord

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/contract/queue"
	"kok.dev/workflows/machine"
)

const machineTestdata = "../../workflows/machine/testdata"

// machineWorld is one Machine, its cluster and its host as the fake activities see them: the
// host's packages change when the workflow installs or removes them.
type machineWorld struct {
	mu        sync.Mutex
	desired   kube.MachineDesired
	installed map[string]hostapi.InstalledPackage
	order     []string // installed package names in install order, for Facts
	failWith  map[string]error
	repairs   map[string][]string
	node      bool
	reports   []kube.MachineReport
	events    []kube.MachineEventParams
	released  bool
	ensure    *gate // when set, the next EnsurePackage waits for it
}

func newMachineWorld(host string, pkgs ...hostapi.PackageSpec) *machineWorld {
	return &machineWorld{
		desired:   kube.MachineDesired{Found: true, Generation: 1, Host: host, DriftInterval: time.Hour, Packages: pkgs},
		installed: map[string]hostapi.InstalledPackage{},
		failWith:  map[string]error{},
		repairs:   map[string][]string{},
		node:      true,
	}
}

func pkg(name, version string, deps ...string) hostapi.PackageSpec {
	return hostapi.PackageSpec{Name: name, Version: version, Installer: "local", DependsOn: deps}
}

func (w *machineWorld) update(f func(w *machineWorld)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

func (w *machineWorld) holds(ok func(w *machineWorld) bool) func() bool {
	return func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return ok(w)
	}
}

// lastPhase is the phase of the newest status report ("" before the first).
func (w *machineWorld) lastPhase() string {
	if len(w.reports) == 0 {
		return ""
	}
	return w.reports[len(w.reports)-1].Phase
}

// start serves the Machine's kube activities on its cluster's queue and, when host is set, its
// host's activities on the host queue.
func (w *machineWorld) start(s *server, cluster string, host bool) {
	s.activities(queue.ClusterTaskQueue(cluster), map[string]any{
		"ReadMachine": w.ReadMachine, "ReportMachineStatus": w.ReportMachineStatus, "RecordMachineEvent": w.RecordMachineEvent,
		"SetNodeSchedulable": w.SetNodeSchedulable, "ReleaseMachine": w.ReleaseMachine,
	})
	if host {
		w.startHost(s)
	}
}

func (w *machineWorld) startHost(s *server) {
	s.activities(queue.HostTaskQueue(w.desired.Host), map[string]any{
		"Facts": w.Facts, "EnsurePackage": w.EnsurePackage, "RemovePackage": w.RemovePackage, "CheckHealth": w.CheckHealth,
	})
}

func (w *machineWorld) ReadMachine(context.Context, kube.ReadMachineParams) (kube.MachineDesired, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired, nil
}

func (w *machineWorld) ReportMachineStatus(_ context.Context, r kube.MachineReport) error {
	w.update(func(w *machineWorld) { w.reports = append(w.reports, r) })
	return nil
}

func (w *machineWorld) RecordMachineEvent(_ context.Context, e kube.MachineEventParams) error {
	w.update(func(w *machineWorld) { w.events = append(w.events, e) })
	return nil
}

func (w *machineWorld) SetNodeSchedulable(context.Context, kube.SetNodeSchedulableParams) (kube.SetNodeSchedulableResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.node {
		return kube.SetNodeSchedulableResult{}, temporal.NewNonRetryableApplicationError("node does not exist", kube.ErrTypeNodeNotFound, nil)
	}
	return kube.SetNodeSchedulableResult{Changed: true}, nil
}

func (w *machineWorld) ReleaseMachine(context.Context, kube.ReleaseMachineParams) error {
	w.update(func(w *machineWorld) {
		w.released = true
		w.desired = kube.MachineDesired{}
	})
	return nil
}

func (w *machineWorld) Facts(context.Context) (hostapi.FactsResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	res := hostapi.FactsResult{Host: w.desired.Host, OS: "kokos", Address: "10.0.0.1"}
	for _, name := range w.order {
		res.Installed = append(res.Installed, w.installed[name])
	}
	return res, nil
}

func (w *machineWorld) EnsurePackage(ctx context.Context, p hostapi.EnsurePackageParams) (hostapi.EnsurePackageResult, error) {
	w.mu.Lock()
	g := w.ensure
	w.ensure = nil
	w.mu.Unlock()
	if g != nil {
		if err := g.pass(ctx); err != nil {
			return hostapi.EnsurePackageResult{}, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s := p.Spec
	if err := w.failWith[s.Name+"@"+s.Version]; err != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	prev, had := w.installed[s.Name]
	if !had {
		w.order = append(w.order, s.Name)
	}
	w.installed[s.Name] = hostapi.InstalledPackage{Name: s.Name, Version: s.Version, DependsOn: s.DependsOn, ServiceRunning: true}
	switch {
	case !had:
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureInstalled}, nil
	case prev.Version != s.Version:
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureUpgraded, PreviousVersion: prev.Version}, nil
	case len(w.repairs[s.Name]) > 0:
		r := w.repairs[s.Name]
		delete(w.repairs, s.Name)
		return hostapi.EnsurePackageResult{Action: hostapi.EnsureRepaired, Repairs: r}, nil
	}
	return hostapi.EnsurePackageResult{Action: hostapi.EnsureNone}, nil
}

func (w *machineWorld) RemovePackage(_ context.Context, p hostapi.RemovePackageParams) (hostapi.RemovePackageResult, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	prev, had := w.installed[p.Name]
	delete(w.installed, p.Name)
	for i, n := range w.order {
		if n == p.Name {
			w.order = append(w.order[:i], w.order[i+1:]...)
			break
		}
	}
	return hostapi.RemovePackageResult{Changed: had, Version: prev.Version}, nil
}

func (w *machineWorld) CheckHealth(context.Context, hostapi.CheckHealthParams) (hostapi.CheckHealthResult, error) {
	return hostapi.CheckHealthResult{Healthy: true}, nil
}

// machineRun is one recorded Machine workflow.
type machineRun struct {
	t       *testing.T
	s       *server
	w       *machineWorld
	id      string
	run     client.WorkflowRun
	cluster string
}

func startMachine(t *testing.T, s *server, w *machineWorld, cluster, name string, hostWorker bool) *machineRun {
	t.Helper()
	w.start(s, cluster, hostWorker)
	id := machine.WorkflowID(cluster, name)
	run, err := s.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: id, TaskQueue: queue.ControlTaskQueue},
		machine.WorkflowName, machine.Params{Cluster: cluster, Machine: name})
	require.NoError(t, err)
	return &machineRun{t: t, s: s, w: w, id: id, run: run, cluster: cluster}
}

func (m *machineRun) waitFor(what string, ok func(w *machineWorld) bool) {
	m.t.Helper()
	eventually(m.t, what, m.w.holds(ok))
}

// signal sends reconcile, with a payload as today's watcher does (or none when inputs is "").
func (m *machineRun) signal(inputs string) {
	m.t.Helper()
	var arg any
	if inputs != "" {
		arg = machine.ReconcileSignal{Inputs: inputs}
	}
	require.NoError(m.t, m.s.c.SignalWorkflow(context.Background(), m.id, "", machine.SignalReconcile, arg))
}

// gone deletes the Machine without a finalizer (ReadMachine finds nothing) and waits for the
// workflow to return.
func (m *machineRun) gone() {
	m.t.Helper()
	m.w.update(func(w *machineWorld) { w.desired = kube.MachineDesired{} })
	m.signal("")
	m.finish()
}

func (m *machineRun) finish() {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(m.t, m.s.c.GetWorkflow(ctx, m.id, "").Get(ctx, nil))
}

// save writes the history of the run.
func (m *machineRun) save(name string) {
	m.t.Helper()
	write(m.t, machineTestdata, name, m.s.history(m.t, m.id, m.run.GetRunID()))
}

func ready(w *machineWorld) bool { return w.lastPhase() == string(kokv1.MachineReady) }

func TestRecordMachine(t *testing.T) {
	skipUnlessRecording(t)
	s := newServer(t, 0)

	// The agent is down when the workflow starts: Facts times out before any worker picks it
	// up (ScheduleToStart, one minute), the Machine says so, and once the agent polls the next
	// pass installs.
	t.Run("agent-timeout", func(t *testing.T) {
		t.Parallel()
		w := newMachineWorld("agent-h1", pkg("runtime", "1"))
		m := startMachine(t, s, w, "agent", "n1", false)
		m.waitFor("the agent reported not connected", func(w *machineWorld) bool {
			return len(w.reports) > 0 && w.lastPhase() == string(kokv1.MachineNotReady)
		})
		w.startHost(s)
		m.waitFor("installed once the agent polls", ready)
		m.gone()
		m.save("agent-timeout")
	})

	// A reconcile signal (with the watcher's inputs digest) arrives while an install runs; the
	// spec changed meanwhile, so the next pass upgrades.
	t.Run("signal-during-activity", func(t *testing.T) {
		t.Parallel()
		w := newMachineWorld("sig-h1", pkg("runtime", "1"))
		g := newGate()
		w.ensure = g
		m := startMachine(t, s, w, "sig", "n1", true)
		<-g.waiting
		w.update(func(w *machineWorld) {
			w.desired.Generation = 2
			w.desired.Packages = []hostapi.PackageSpec{pkg("runtime", "2")}
		})
		m.signal("sha256:inputs-2")
		m.signal("sha256:inputs-2") // many signals in a row are one wake-up
		close(g.open)
		m.waitFor("upgraded to the new spec", func(w *machineWorld) bool {
			return ready(w) && w.installed["runtime"].Version == "2"
		})
		m.gone()
		m.save("signal-during-activity")
	})

	// Drift: the agent repairs a stopped service during the periodic drift check, which
	// becomes an Event on the Machine.
	t.Run("drift-repair", func(t *testing.T) {
		t.Parallel()
		w := newMachineWorld("drift-h1", pkg("runtime", "1"))
		m := startMachine(t, s, w, "drift", "n1", true)
		m.waitFor("installed", ready)
		w.update(func(w *machineWorld) {
			w.repairs["runtime"] = []string{"service runtime was stopped: started it"}
			w.desired.DriftInterval = 2 * time.Second // the next check is due at once
		})
		m.signal("")
		m.waitFor("the repair recorded as an Event", func(w *machineWorld) bool {
			return len(w.events) > 0 && ready(w)
		})
		m.gone()
		m.save("drift-repair")
	})

	// A failed install is remembered for the generation: the next pass does not retry it and
	// its dependent waits; a spec change retries.
	t.Run("install-failed", func(t *testing.T) {
		t.Parallel()
		w := newMachineWorld("fail-h1", pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"))
		w.failWith["runtime@1"] = temporal.NewNonRetryableApplicationError("checksum mismatch", hostapi.ErrTypeInstallFailed, nil)
		m := startMachine(t, s, w, "fail", "n1", true)
		m.waitFor("degraded", func(w *machineWorld) bool { return w.lastPhase() == string(kokv1.MachineDegraded) })
		n := 0
		w.update(func(w *machineWorld) { n = len(w.reports) })
		m.signal("")
		m.waitFor("a second pass that does not retry", func(w *machineWorld) bool {
			return len(w.reports) > n && w.lastPhase() == string(kokv1.MachineDegraded)
		})
		w.update(func(w *machineWorld) {
			w.desired.Generation = 2
			w.desired.Packages = []hostapi.PackageSpec{pkg("runtime", "2"), pkg("kubelet", "v1", "runtime")}
		})
		m.signal("")
		m.waitFor("the new spec installs", ready)
		m.gone()
		m.save("install-failed")
	})

	// Teardown: the Node registers late (WaitingForNode), then the Machine is deleted with the
	// finalizer: packages are removed in reverse dependency order, then the Machine released.
	t.Run("teardown", func(t *testing.T) {
		t.Parallel()
		w := newMachineWorld("down-h1", pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"))
		w.node = false
		m := startMachine(t, s, w, "down", "n1", true)
		m.waitFor("waiting for the node", func(w *machineWorld) bool { return len(w.reports) > 0 && w.lastPhase() == string(kokv1.MachineReady) })
		w.update(func(w *machineWorld) { w.node = true })
		m.signal("")
		n := 0
		w.update(func(w *machineWorld) { n = len(w.reports) })
		m.waitFor("schedulable", func(w *machineWorld) bool { return len(w.reports) > n && ready(w) })
		w.update(func(w *machineWorld) { w.desired.Deleting = true })
		m.signal("")
		m.finish()
		require.True(t, w.holds(func(w *machineWorld) bool { return w.released && len(w.installed) == 0 })())
		m.save("teardown")
	})

	// Paused, then an unresolvable spec (Blocked), then a resolvable one.
	t.Run("paused-blocked", func(t *testing.T) {
		t.Parallel()
		w := newMachineWorld("pause-h1", pkg("runtime", "1"))
		w.desired.Paused = true
		m := startMachine(t, s, w, "pause", "n1", true)
		m.waitFor("paused", func(w *machineWorld) bool { return w.lastPhase() == string(kokv1.MachinePaused) })
		w.update(func(w *machineWorld) {
			w.desired.Paused, w.desired.Generation = false, 2
			w.desired.ResolveErrors = []string{"MachinePackageVersion runtime-1 does not exist"}
		})
		m.signal("")
		m.waitFor("blocked", func(w *machineWorld) bool { return w.lastPhase() == string(kokv1.MachineBlocked) })
		w.update(func(w *machineWorld) { w.desired.ResolveErrors, w.desired.Generation = nil, 3 })
		m.signal("")
		m.waitFor("installed", ready)
		m.gone()
		m.save("paused-blocked")
	})
}

// TestRecordMachineContinueAsNew runs on a server that suggests continue-as-new after a few
// dozen events: the first pass (an install) ends the run with continue-as-new, carrying the State
// (bootstrapped, generation, last drift check) into the next run, which rests.
//
// Today's code continues as new with the function machine.Workflow, whose type the SDK looks up
// by the function's short name, "Workflow": under the real registration, where cluster.Workflow
// is registered after it, that resolves to "Cluster", so the next run is a Cluster workflow with
// the Machine's parameters (a defect of the shipped code, reported, not fixed here). The first
// run is recorded as it is; the second is started as a Machine workflow with the carried
// parameters, which is the run the continue-as-new means to start.
func TestRecordMachineContinueAsNew(t *testing.T) {
	skipUnlessRecording(t)
	s := newServer(t, 50)
	w := newMachineWorld("can-h1", pkg("runtime", "1"))
	m := startMachine(t, s, w, "can", "n1", true)
	m.waitFor("installed", ready)
	ctx := context.Background()
	var next string
	eventually(t, "continued as new", func() bool {
		d, err := s.c.DescribeWorkflowExecution(ctx, m.id, "")
		next = d.GetWorkflowExecutionInfo().GetExecution().GetRunId()
		return err == nil && next != m.run.GetRunID()
	})
	first := s.history(t, m.id, m.run.GetRunID())
	can := first.Events[len(first.Events)-1].GetWorkflowExecutionContinuedAsNewEventAttributes()
	require.NotNil(t, can)
	t.Logf("the shipped code continued as new into workflow type %q", can.GetWorkflowType().GetName())
	var p machine.Params
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.GetInput(), &p))
	require.True(t, p.State.Bootstrapped, "the carried state: %+v", p.State)
	if can.GetWorkflowType().GetName() != machine.WorkflowName {
		require.NoError(t, s.c.TerminateWorkflow(ctx, m.id, next, "continued as new into the wrong workflow type"))
		run, err := s.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: m.id, TaskQueue: queue.ControlTaskQueue}, machine.WorkflowName, p)
		require.NoError(t, err)
		next = run.GetRunID()
	}
	n := 0
	w.update(func(w *machineWorld) { n = len(w.reports) })
	m.waitFor("the next run's first pass", func(w *machineWorld) bool { return len(w.reports) > n && ready(w) })
	m.gone()
	write(t, machineTestdata, "continue-as-new", first)
	write(t, machineTestdata, "continue-as-new-2", s.history(t, m.id, next))
}
