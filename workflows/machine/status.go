package machine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"

	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
)

// Status composition: pure functions from what a pass found to the Machine's status, so every
// verdict can be tested as a table, and the workflow writes status only when the composed
// report changes (reportHash).

// waitKind says what a pass stopped to wait for. None of them is a failure: the workflow tries
// again with backoff and remembers nothing.
type waitKind string

const (
	waitNone     waitKind = ""
	waitAgent    waitKind = "agent"    // the host's agent did not answer in time
	waitArtifact waitKind = "artifact" // a package's artifact cannot be downloaded for now
	waitOperator waitKind = "operator" // no machine operator served a Kubernetes call in time
	waitNode     waitKind = "node"     // the kubelet has not registered the Node yet
	waitRetry    waitKind = "retry"    // an error that may pass on its own
)

// schedVerdict is the schedulability the workflow last applied to the Node.
type schedVerdict struct {
	Schedulable bool
	Reason      string
	Message     string
}

// observation is what one pass found; composeStatus turns it into the Machine's status.
type observation struct {
	Machine string
	Desired kube.MachineDesired
	// Wait and WaitMessage: why the pass stopped to wait (waitNone when it did not).
	Wait        waitKind
	WaitMessage string
	// AgentAnswered: the agent answered this pass (AgentConnected=True).
	AgentAnswered bool
	// PlanError: the packages cannot be planned.
	PlanError string
	// Step: the step in progress ("step 2/3: install kubelet v1"), "" when none runs.
	Step string
	// Components: each package as the pass left it, in name order.
	Components []kube.ComponentReport
	// Failed: packages remembered as failed for this generation, "name@version" to why.
	Failed map[string]string
	// Sched: the schedulability last applied (nil before the first decision).
	Sched *schedVerdict
	// Facts: the host's OS, kernel and arch as last reported.
	Facts *hostapi.FactsResult
	// Inputs: the newest watcher digest the workflow has read the Machine after.
	Inputs string
	// Deleting: the Machine is being torn down.
	Deleting bool
}

// composeStatus is the Machine's status for what a pass found.
func composeStatus(o observation) kube.MachineReport {
	d := o.Desired
	r := kube.MachineReport{Name: o.Machine, ObservedGeneration: d.Generation, ReportedConditions: d.Conditions, Facts: o.Facts, ObservedInputs: o.Inputs}
	if o.Sched != nil {
		r.Schedulable = o.Sched.Schedulable
	}
	if notes := strings.Join(d.ConditionNotes, "; "); notes != "" {
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionConditionMapsValid, false, kokv1.ReasonMalformed, notes))
	}
	switch {
	case o.Wait == waitAgent:
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionAgentConnected, false, kokv1.ReasonAgentAbsent, o.WaitMessage))
	case o.AgentAnswered:
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionAgentConnected, true, kokv1.ReasonPolling, "the agent of host "+d.Host+" answers"))
	}

	if o.Deleting {
		r.Phase = string(kokv1.MachineDeleting)
		r.Components = o.Components
		msg := "removing the packages from host " + d.Host
		if d.Orphan {
			msg = "leaving host " + d.Host + " as it is (orphan)"
		}
		reason := kokv1.ReasonInProgress
		if o.Wait != waitNone {
			reason, msg = waitReason(o.Wait), o.WaitMessage
		}
		r.Conditions = append(r.Conditions, cond(kokv1.ConditionProgressing, true, reason, msg))
		return r
	}
	if d.Paused {
		r.Phase = string(kokv1.MachinePaused)
		r.Conditions = append(r.Conditions, cond(kokv1.ConditionProgressing, false, kokv1.ReasonPaused, "spec.paused is true: nothing on the host changes"))
		return r
	}
	if len(d.ResolveErrors) > 0 {
		r.Phase = string(kokv1.MachineBlocked)
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionPackagesInSync, false, kokv1.ReasonNotFound, strings.Join(d.ResolveErrors, "; ")+"; nothing on the host was changed"))
		return r
	}
	if o.PlanError != "" {
		r.Phase = string(kokv1.MachineBlocked)
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionPackagesInSync, false, kokv1.ReasonInvalidSpec, o.PlanError+"; nothing on the host was changed"))
		return r
	}

	r.Components = o.Components
	if o.Sched != nil {
		r.Conditions = append(r.Conditions, cond(kokv1.MachineConditionSchedulable, o.Sched.Schedulable, o.Sched.Reason, o.Sched.Message))
	}
	if o.Step != "" {
		r.Phase = string(kokv1.MachineProvisioning)
		r.Conditions = append(r.Conditions, cond(kokv1.ConditionProgressing, true, kokv1.ReasonInProgress, o.Step))
		return r
	}
	inSync := allRunning(o.Components, d.Packages) && len(o.Failed) == 0
	msg := syncMessage(inSync, o.Failed, o.Components)
	switch o.Wait {
	case waitNone, waitNode:
		r.Conditions = append(r.Conditions, cond(kokv1.ConditionProgressing, false, kokv1.ReasonSucceeded, "no step pending"))
		if o.Wait == waitNode {
			r.Conditions = upsert(r.Conditions, cond(kokv1.MachineConditionSchedulable, false, kokv1.ReasonNodeNotRegistered, o.WaitMessage))
		}
	default:
		r.Conditions = append(r.Conditions, cond(kokv1.ConditionProgressing, true, waitReason(o.Wait), o.WaitMessage))
	}
	r.Conditions = append(r.Conditions,
		cond(kokv1.MachineConditionPackagesInSync, inSync, syncReason(inSync), msg),
		cond(kokv1.ConditionReady, inSync, syncReason(inSync), msg))
	switch {
	case o.Wait == waitAgent:
		r.Phase = string(kokv1.MachineNotReady)
	case o.Wait == waitArtifact || o.Wait == waitRetry:
		r.Phase = string(kokv1.MachineProvisioning)
	case !inSync:
		r.Phase = string(kokv1.MachineDegraded)
	default:
		r.Phase = string(kokv1.MachineReady)
	}
	return r
}

func waitReason(w waitKind) string {
	switch w {
	case waitAgent:
		return kokv1.ReasonAgentAbsent
	case waitArtifact:
		return kokv1.ReasonArtifactUnavailable
	case waitOperator:
		return kokv1.ReasonOperatorUnavailable
	case waitNode:
		return kokv1.ReasonNodeNotRegistered
	default:
		return kokv1.ReasonRetrying
	}
}

// reportHash identifies a report without its clock fields: two passes that found the same
// thing hash alike, and the second writes nothing.
func reportHash(r kube.MachineReport) string {
	r.Now, r.LastDriftCheck = time.Time{}, time.Time{}
	// encoding/json writes struct fields in order and map keys sorted: the same report always
	// gives the same bytes (workflowcheck cannot see that through its type cache).
	//workflowcheck:ignore
	data, _ := json.Marshal(r)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// allRunning: every wanted package runs at its wanted version.
func allRunning(comps []kube.ComponentReport, want []hostapi.PackageSpec) bool {
	by := map[string]kube.ComponentReport{}
	for _, c := range comps {
		by[c.Name] = c
	}
	for _, p := range want {
		got, ok := by[p.Name]
		if !ok || got.Phase != string(kokv1.ComponentRunning) || got.Version != p.Version {
			return false
		}
	}
	return true
}

// schedVerdictOf is the condition a scheduling decision reports.
func schedVerdictOf(dec SchedulingDecision, d kube.MachineDesired) schedVerdict {
	return schedVerdict{Schedulable: dec.Schedulable, Reason: schedReason(dec, d), Message: dec.Message()}
}

// atRestComponents is each wanted package as InspectHost reports it: running, unhealthy, or
// remembered as failed.
func atRestComponents(want []hostapi.PackageSpec, res hostapi.InspectHostResult, failed map[string]string) (comps []kube.ComponentReport, serving map[string]bool) {
	installed := map[string]hostapi.InstalledPackage{}
	for _, ip := range res.Installed {
		installed[ip.Name] = ip
	}
	unhealthy := map[string]string{}
	for _, u := range res.Unhealthy {
		unhealthy[u.Name] = u.Message
	}
	serving = map[string]bool{}
	c := &components{byName: map[string]kube.ComponentReport{}}
	for _, p := range want {
		ip, have := installed[p.Name]
		why, bad := unhealthy[p.Name]
		serving[p.Name] = have && ip.ServiceRunning && !bad
		switch {
		case failed[p.Name+"@"+p.Version] != "":
			c.set(p.Name, ip.Version, kokv1.ComponentFailed, failed[p.Name+"@"+p.Version])
		case !have:
			c.set(p.Name, "", kokv1.ComponentPending, "not installed")
		case bad:
			c.set(p.Name, ip.Version, kokv1.ComponentFailed, "unhealthy: "+why)
		case !ip.ServiceRunning:
			c.set(p.Name, ip.Version, kokv1.ComponentFailed, "service not running")
		default:
			c.set(p.Name, ip.Version, kokv1.ComponentRunning, "")
		}
	}
	return c.list(), serving
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
		return kokv1.ReasonAllGatesPassed
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

func syncMessage(ok bool, failed map[string]string, comps []kube.ComponentReport) string {
	if ok {
		return "every package runs at its spec version and is healthy"
	}
	var why []string
	for _, msg := range sortedMap(failed) {
		why = append(why, msg)
	}
	for _, c := range comps {
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
