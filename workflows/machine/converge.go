package machine

import (
	"errors"
	"fmt"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/workflows/internal/kit"
)

// converge is the full path: read the host's packages, run the planned installs, upgrades and
// removals, then ensure every wanted package again (the agent repairs drift and says what). It
// runs only when the host's digest differs from the spec's, or when the agent cannot answer
// InspectHost. It returns how the pass ended, which packages serve, and whether anything on the
// host changed. A wait (absent agent, unavailable artifact) stops it at once and is not
// remembered: the next pass starts over from what the host has.
func (m *machineRun) converge(ctx workflow.Context, d kube.MachineDesired, o *observation) (out passResult, serving map[string]bool, changed bool) {
	s := m.s
	var facts hostapi.FactsResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, inspectTimeout), hostActs.Facts).Get(ctx, &facts); err != nil {
		w := classify(err)
		if w == waitNone {
			w = waitRetry
		}
		return passResult{wait: w, message: m.waitMessage(w, d, err)}, nil, false
	}
	o.AgentAnswered = true
	s.Facts = &hostapi.FactsResult{Host: facts.Host, OS: facts.OS, Kernel: facts.Kernel, Arch: facts.Arch}
	o.Facts = s.Facts

	desired := make([]Package, 0, len(d.Packages))
	specs := map[string]hostapi.PackageSpec{}
	for _, ps := range d.Packages {
		desired = append(desired, Package{Name: ps.Name, Version: ps.Version, DependsOn: ps.DependsOn})
		specs[ps.Name] = ps
	}
	installed := make([]Installed, 0, len(facts.Installed))
	for _, ip := range facts.Installed {
		installed = append(installed, Installed{Name: ip.Name, Version: ip.Version, DependsOn: ip.DependsOn})
	}
	steps, err := Plan(desired, installed)
	if err != nil {
		o.PlanError = err.Error()
		return passResult{}, nil, false
	}

	comps := componentsFrom(desired, installed)
	broken := map[string]bool{} // packages that failed, so their dependents are not touched
	done := map[string]bool{}   // packages installed and found healthy by this pass
	// serving: packages that run at some version and that no check of this pass found
	// unhealthy. A failed upgrade that the agent rolled back keeps serving at the old version:
	// schedulability depends on serving, not on being at the spec's version, so a bad release
	// never cordons a fleet by itself.
	serving = map[string]bool{}
	for _, ip := range facts.Installed {
		serving[ip.Name] = ip.ServiceRunning
	}
	for key, why := range sortedMap(s.Failed) {
		name, _, _ := strings.Cut(key, "@")
		broken[name] = true
		comps.set(name, specs[name].Version, kokv1.ComponentFailed, why)
	}
	defer func() { s.Components = comps.list() }()

	for i, st := range steps {
		if blockedBy := dependsOnBroken(specs[st.Name].DependsOn, broken); st.Action != ActionRemove && (broken[st.Name] || blockedBy != "") {
			if blockedBy != "" {
				comps.set(st.Name, st.To, kokv1.ComponentPending, "waiting: depends on "+blockedBy+", which failed")
				broken[st.Name] = true
			}
			continue
		}
		comps.set(st.Name, versionOf(st), phaseOf(st.Action), st.String())
		progress := *o
		progress.Components, progress.Step = comps.list(), fmt.Sprintf("step %d/%d: %s", i+1, len(steps), st)
		m.report(ctx, composeStatus(progress))

		if st.Action == ActionRemove {
			var res hostapi.RemovePackageResult
			if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, installTimeout), hostActs.RemovePackage, hostapi.RemovePackageParams{Name: st.Name}).Get(ctx, &res); err != nil {
				w := classify(err)
				if w == waitNone {
					w = waitRetry // a removal is tried again, never remembered
				}
				comps.set(st.Name, st.From, kokv1.ComponentFailed, "remove failed: "+kit.RootCause(err))
				return passResult{wait: w, message: m.waitMessage(w, d, err)}, serving, true
			}
			changed = true
			comps.remove(st.Name)
			delete(serving, st.Name)
			continue
		}
		why, applied, wait := m.ensureAndCheck(ctx, d, specs[st.Name])
		changed = changed || applied
		if wait.wait != waitNone {
			comps.set(st.Name, st.To, phaseOf(st.Action), wait.message)
			return wait, serving, true
		}
		if why != "" {
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
		done[st.Name] = true
	}

	// Every other wanted package is ensured again: the agent acts only where the host differs (a
	// stopped service, an edited config) and says what it repaired; the repairs of the pass
	// become one Event on the Machine.
	order, _ := topoOrder(depsOf(desired)) // Plan already refused a cycle
	var repairs []string
	for _, name := range order {
		if broken[name] || done[name] {
			continue
		}
		spec := specs[name]
		var res hostapi.EnsurePackageResult
		if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, installTimeout), hostActs.EnsurePackage, hostapi.EnsurePackageParams{Spec: spec}).Get(ctx, &res); err != nil {
			if w := classify(err); w != waitNone {
				return passResult{wait: w, message: m.waitMessage(w, d, err)}, serving, changed
			}
			comps.set(name, spec.Version, kokv1.ComponentFailed, "drift check: "+kit.RootCause(err))
			serving[name] = false
			continue
		}
		if res.Action != hostapi.EnsureNone {
			changed = true
			what := strings.Join(res.Repairs, "; ")
			if what == "" {
				what = strings.ToLower(string(res.Action))
			}
			repairs = append(repairs, fmt.Sprintf("%s %s: %s", name, spec.Version, what))
		}
		var health hostapi.CheckHealthResult
		if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, healthWait), hostActs.CheckHealth, hostapi.CheckHealthParams{Name: name, Wait: res.Action != hostapi.EnsureNone}).Get(ctx, &health); err != nil {
			if w := classify(err); w == waitAgent && !healthTimedOut(err) {
				return passResult{wait: w, message: m.waitMessage(w, d, err)}, serving, changed
			}
			health.Message = kit.RootCause(err)
		}
		if !health.Healthy {
			comps.set(name, spec.Version, kokv1.ComponentFailed, "unhealthy: "+health.Message)
			serving[name] = false
			continue
		}
		comps.set(name, spec.Version, kokv1.ComponentRunning, "")
		serving[name] = true
	}
	s.LastDriftCheck = workflow.Now(ctx)
	if len(repairs) > 0 {
		info := workflow.GetInfo(ctx)
		_ = workflow.ExecuteActivity(m.reportCtx, kubeActs.RecordMachineEvent, kube.MachineEventParams{
			Machine: m.p.Machine, Key: fmt.Sprintf("%s/%s/%d/drift", info.WorkflowExecution.ID, info.WorkflowExecution.RunID, s.Passes),
			Type: "Warning", Reason: kokv1.ReasonDriftCorrected, Message: strings.Join(repairs, "; "), Time: workflow.Now(ctx),
		}).Get(ctx, nil)
	}
	return passResult{}, serving, changed
}

// ensureAndCheck installs or upgrades one package and waits for it to be healthy. It returns why
// it failed for good ("" otherwise), whether the new version was applied (an install that failed
// leaves the previous state on the host: the agent rolls back), and a wait when the agent or the
// artifact was not there: then nothing is remembered.
func (m *machineRun) ensureAndCheck(ctx workflow.Context, d kube.MachineDesired, spec hostapi.PackageSpec) (why string, applied bool, wait passResult) {
	var res hostapi.EnsurePackageResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, installTimeout), hostActs.EnsurePackage, hostapi.EnsurePackageParams{Spec: spec}).Get(ctx, &res); err != nil {
		if w := classify(err); w != waitNone {
			return "", false, passResult{wait: w, message: m.waitMessage(w, d, err)}
		}
		return fmt.Sprintf("%s %s: %s", spec.Name, spec.Version, kit.RootCause(err)), false, passResult{}
	}
	var health hostapi.CheckHealthResult
	if err := workflow.ExecuteActivity(m.hostCtx(ctx, d, healthWait), hostActs.CheckHealth, hostapi.CheckHealthParams{Name: spec.Name, Wait: true}).Get(ctx, &health); err != nil {
		if w := classify(err); w == waitAgent && !healthTimedOut(err) {
			// The agent went away while checking: the install stands, its health is unknown.
			return "", true, passResult{wait: w, message: m.waitMessage(w, d, err)}
		}
		return fmt.Sprintf("%s %s: health check: %s", spec.Name, spec.Version, kit.RootCause(err)), true, passResult{}
	}
	if !health.Healthy {
		return fmt.Sprintf("%s %s is unhealthy: %s", spec.Name, spec.Version, health.Message), true, passResult{}
	}
	return "", true, passResult{}
}

// healthTimedOut: a waiting health check ran to its StartToClose while the agent heartbeated:
// the package did not become healthy in time, which is a failure, not an absent agent.
func healthTimedOut(err error) bool {
	var to *temporal.TimeoutError
	return errors.As(err, &to) && to.TimeoutType() == enumspb.TIMEOUT_TYPE_START_TO_CLOSE
}
