package machine

import (
	"fmt"

	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/kube"
	"kok.dev/contract/hostapi"
	"kok.dev/workflows/internal/kit"
)

// teardown removes every package (unless the Machine orphans them) and releases the Machine. It
// never gives up with an error, which would leave the finalizer with nobody to remove it: what
// it cannot do now (an absent agent, no operator) it waits for with backoff, reading the Machine
// again each time, so that a person can tell it to leave the host (deletionPolicy Orphan or the
// kok.dev/orphan annotation). It returns true once the Machine is released, false when the
// object it was tearing down is gone or was replaced by a new one of the same name.
func (m *machineRun) teardown(ctx workflow.Context, d kube.MachineDesired) bool {
	s := m.s
	s.Waits = 0
	for {
		s.Stage = StageTearingDown
		o := m.observation(d)
		o.Deleting = true
		wait, why := m.teardownOnce(ctx, d, &o)
		if wait == waitNone {
			return true
		}
		switch wait {
		case waitAgent:
			s.Stage = StageTearingDownWaitingForAgent
			why += "; to leave the host as it is, set spec.deletionPolicy to Orphan or annotate the Machine kok.dev/orphan=true"
		case waitOperator:
			s.Stage = StageWaitingForOperator
		default:
			s.Stage = StageRetrying
		}
		o.Wait, o.WaitMessage = wait, why
		m.report(ctx, composeStatus(o))
		m.sleep(ctx, m.backoff())

		read, err := m.readMachine(ctx)
		if err != nil {
			continue // no operator: try again with the Machine as last read
		}
		if !read.Found || (d.UID != "" && read.UID != d.UID) {
			return false
		}
		d = read
	}
}

// teardownOnce is one attempt at the teardown; it returns what it waits for (waitNone: done).
func (m *machineRun) teardownOnce(ctx workflow.Context, d kube.MachineDesired, o *observation) (waitKind, string) {
	m.report(ctx, composeStatus(*o))
	var res kube.SetNodeSchedulableResult
	if err := workflow.ExecuteActivity(m.kubeCtx, kubeActs.SetNodeSchedulable, kube.SetNodeSchedulableParams{Node: m.p.Machine, Schedulable: false}).Get(ctx, &res); err != nil && !isNodeNotFound(err) {
		return waitOperator, "cordon node " + m.p.Machine + ": " + kit.RootCause(err)
	}
	if !d.Orphan {
		var facts hostapi.FactsResult
		if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, inspectTimeout), hostActs.Facts).Get(ctx, &facts); err != nil {
			return waitAgent, fmt.Sprintf("read host %s before removing its packages: %s", d.Host, m.waitMessage(waitAgent, d, err))
		}
		o.AgentAnswered = true
		installed := make([]Installed, 0, len(facts.Installed))
		for _, ip := range facts.Installed {
			installed = append(installed, Installed{Name: ip.Name, Version: ip.Version, DependsOn: ip.DependsOn})
		}
		steps, err := Plan(nil, installed)
		if err != nil {
			return waitRetry, "order the removal of the packages on host " + d.Host + ": " + err.Error()
		}
		for _, st := range steps {
			var rr hostapi.RemovePackageResult
			if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, installTimeout), hostActs.RemovePackage, hostapi.RemovePackageParams{Name: st.Name}).Get(ctx, &rr); err != nil {
				w := classify(err)
				if w != waitAgent {
					w = waitRetry
				}
				return w, fmt.Sprintf("remove %s from host %s: %s", st.Name, d.Host, kit.RootCause(err))
			}
		}
	}
	if err := workflow.ExecuteActivity(m.kubeCtx, kubeActs.ReleaseMachine, kube.ReleaseMachineParams{Name: m.p.Machine, DeleteNode: !d.Orphan, UID: d.UID}).Get(ctx, nil); err != nil {
		return waitOperator, "release machine " + m.p.Machine + ": " + kit.RootCause(err)
	}
	return waitNone, ""
}
