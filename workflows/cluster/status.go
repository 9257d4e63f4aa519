package cluster

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
)

// Status composition: pure functions from what the checks saw to what status says. The
// workflows call them; the tests call them directly.

// RecoveriesWithin returns the recoveries made within window before now, oldest first: the
// one count the heal budget, the status field and the trimming of State all use.
func RecoveriesWithin(now time.Time, recoveries []time.Time, window time.Duration) []time.Time {
	var out []time.Time
	for _, t := range recoveries {
		if now.Sub(t) < window {
			out = append(out, t)
		}
	}
	return out
}

// masterReports builds status.masters from what each master should run (running, through the
// release cache), the API servers' checks and the agents' facts. A nil facts map means the
// agents were not asked (every API server was ready, so the components are taken to run what
// kok installed); a host missing from a non-nil map is an agent that did not answer. phase
// overrides a master's phase (Upgrading, Isolated) while an operation holds it.
func masterReports(cluster string, masters []process.Master, running map[string]map[string]string, releases map[string]controlplane.Release,
	checks map[string]controlplane.MasterCheck, facts map[string]*hostapi.FactsResult, phase map[string]kokv1.MasterPhase,
) []controlplane.MasterReport {
	var out []controlplane.MasterReport
	for _, m := range masters {
		installed := map[string]hostapi.InstalledPackage{}
		if f := facts[m.Host]; f != nil {
			for _, ip := range f.Installed {
				installed[componentOf(cluster, ip.Name)] = ip
			}
		}
		c, checked := checks[m.Host]
		mr := controlplane.MasterReport{Host: m.Host, Ready: true}
		for _, comp := range components {
			rel, ok := running[m.Host][comp]
			if !ok {
				continue
			}
			cr := controlplane.ComponentReport{Name: comp, Version: releases[rel].Components[comp], Ready: true}
			switch ip, ok := installed[comp]; {
			case facts == nil:
			case facts[m.Host] == nil:
				cr.Ready, cr.Message = false, fmt.Sprintf("the agent of %s did not answer", m.Host)
			case !ok:
				cr.Ready, cr.Message = false, "not installed"
			case !ip.ServiceRunning:
				cr.Ready, cr.Message = false, "process not running"
			default:
				cr.Version = ip.Version
			}
			if comp == KubeAPIServer && checked && !c.Ready {
				cr.Ready, cr.Message = false, c.Why
			}
			mr.Ready = mr.Ready && cr.Ready
			mr.Components = append(mr.Components, cr)
		}
		mr.Phase = string(kokv1.MasterRunning)
		if !mr.Ready {
			mr.Phase = string(kokv1.MasterUnhealthy)
		}
		if p, ok := phase[m.Host]; ok {
			mr.Phase = string(p)
		}
		out = append(out, mr)
	}
	return out
}

// Assessment sorts the masters by what kok may do about them.
type Assessment struct {
	Masters []controlplane.MasterReport
	// Sick masters have a fault kok can see: the API server answered "not ready", or the agent
	// answered and a component is not installed or not running. kok heals these.
	Sick []string
	// Unreachable masters gave the meta cluster no answer: their API server did not answer
	// HTTP, and their agent either did not answer either or says the API server runs. That is a
	// network the meta cluster cannot cross, not a fault: nothing is healed or counted.
	Unreachable []string
}

// Healthy says whether every master passes its checks.
func (a Assessment) Healthy() bool { return len(a.Sick) == 0 && len(a.Unreachable) == 0 }

// Assess classifies every master from its check and (nil: not asked) its agent's facts.
func Assess(cluster string, masters []process.Master, running map[string]map[string]string, releases map[string]controlplane.Release,
	checks map[string]controlplane.MasterCheck, facts map[string]*hostapi.FactsResult,
) Assessment {
	a := Assessment{Masters: masterReports(cluster, masters, running, releases, checks, facts, nil)}
	for _, mr := range a.Masters {
		if mr.Ready {
			continue
		}
		c := checks[mr.Host]
		if c.NoAnswer && apiServerRunsOrUnknown(cluster, facts, mr.Host) {
			a.Unreachable = append(a.Unreachable, mr.Host)
			continue
		}
		a.Sick = append(a.Sick, mr.Host)
	}
	sort.Strings(a.Sick)
	sort.Strings(a.Unreachable)
	return a
}

// apiServerRunsOrUnknown: the agent did not answer, or it says the API server's process runs.
func apiServerRunsOrUnknown(cluster string, facts map[string]*hostapi.FactsResult, host string) bool {
	f := facts[host]
	if f == nil {
		return true
	}
	for _, ip := range f.Installed {
		if componentOf(cluster, ip.Name) == KubeAPIServer {
			return ip.ServiceRunning
		}
	}
	return false
}

// HealthConditions are the conditions of a cluster that runs current and whose masters were
// assessed as a: Ready, Degraded, APIServerAvailable, Reachable and Progressing agree with
// each other. ready, when given, replaces the Ready condition of a healthy cluster (a refused
// skew or a rolled-back upgrade says so there).
func HealthConditions(a Assessment, current, endpoint string, ready *controlplane.ConditionReport) []controlplane.ConditionReport {
	n := len(a.Masters)
	reachable := condition(kokv1.ClusterConditionReachable, true, kokv1.ReasonReachable, "every master answers the meta cluster")
	if len(a.Unreachable) > 0 {
		reachable = condition(kokv1.ClusterConditionReachable, false, kokv1.ReasonUnreachable,
			"masters %v give the meta cluster no answer (neither their API servers nor their agents say they are down): nothing is healed or counted until they answer", a.Unreachable)
	}
	idle := condition(kokv1.ConditionProgressing, false, kokv1.ReasonIdle, "at %s", current)
	switch {
	case len(a.Sick) > 0:
		return []controlplane.ConditionReport{
			condition(kokv1.ConditionReady, false, kokv1.ReasonUnhealthy, "%d of %d masters healthy; unhealthy: %v", n-len(a.Sick)-len(a.Unreachable), n, a.Sick),
			condition(kokv1.ConditionDegraded, true, kokv1.ReasonUnhealthy, "masters %v fail their health checks", a.Sick),
			reachable, idle,
		}
	case len(a.Unreachable) == n && n > 0:
		return []controlplane.ConditionReport{
			condition(kokv1.ConditionReady, false, kokv1.ReasonUnreachable, "the meta cluster cannot reach any master; the cluster may well be serving"),
			condition(kokv1.ConditionDegraded, false, kokv1.ReasonUnreachable, "no master is known to be unhealthy"),
			condition(kokv1.ClusterConditionAPIServerAvailable, false, kokv1.ReasonUnreachable, "%s does not answer the meta cluster", endpoint),
			reachable, idle,
		}
	}
	r := condition(kokv1.ConditionReady, true, kokv1.ReasonRunning, "%d of %d masters healthy at %s", n-len(a.Unreachable), n, current)
	if ready != nil {
		r = *ready
	}
	degraded := condition(kokv1.ConditionDegraded, false, kokv1.ReasonHealthy, "every master passes its health checks")
	if len(a.Unreachable) > 0 {
		degraded = condition(kokv1.ConditionDegraded, false, kokv1.ReasonUnreachable, "every master that answers passes its health checks")
	}
	return []controlplane.ConditionReport{
		r, degraded,
		condition(kokv1.ClusterConditionAPIServerAvailable, true, kokv1.ReasonAPIServerReady, "%s answers", endpoint),
		reachable, idle,
	}
}

// WaitingConditions are the conditions of a cluster waiting for a human: Ready False with why
// it waits, and Degraded as the last check saw the masters (a wait that outlived its fault
// says so, and ends by itself after a few healthy checks).
func WaitingConditions(a Assessment, why, workflowID string) []controlplane.ConditionReport {
	degraded := condition(kokv1.ConditionDegraded, false, kokv1.ReasonHealthy, "every master passes its health checks again; the wait ends by itself after %d healthy checks in a row", confirmHealthy)
	if len(a.Sick) > 0 {
		degraded = condition(kokv1.ConditionDegraded, true, kokv1.ReasonUnhealthy, "masters %v fail their health checks", a.Sick)
	} else if len(a.Unreachable) > 0 {
		degraded = condition(kokv1.ConditionDegraded, false, kokv1.ReasonUnreachable, "masters %v give the meta cluster no answer", a.Unreachable)
	}
	return []controlplane.ConditionReport{
		condition(kokv1.ConditionReady, false, kokv1.ReasonRecoveryLimitReached,
			"%s; once fixed, run `kok cluster resolve` (annotation %s) or signal %q to workflow %s", why, kokv1.AnnotationResolve, SignalResolve, workflowID),
		degraded,
	}
}

// sameReport says whether writing b over a would change the status: the clock aside. (Field
// by field: reflect is not for workflow code.)
func sameReport(a, b controlplane.ClusterReport) bool {
	sameOp := a.Operation == b.Operation || (a.Operation != nil && b.Operation != nil && *a.Operation == *b.Operation)
	return a.Name == b.Name && a.ObservedGeneration == b.ObservedGeneration && a.Phase == b.Phase &&
		a.Current == b.Current && a.Previous == b.Previous && a.Target == b.Target && a.Endpoint == b.Endpoint &&
		a.HasKubeconfig == b.HasKubeconfig && a.RecentAutoRecoveries == b.RecentAutoRecoveries && sameOp &&
		slices.Equal(a.Conditions, b.Conditions) &&
		slices.EqualFunc(a.Masters, b.Masters, func(x, y controlplane.MasterReport) bool {
			return x.Host == y.Host && x.Phase == y.Phase && x.Ready == y.Ready && slices.Equal(x.Components, y.Components)
		})
}

func checksByHost(r controlplane.CheckResult) map[string]controlplane.MasterCheck {
	out := map[string]controlplane.MasterCheck{}
	for _, c := range r.Masters {
		out[c.Host] = c
	}
	return out
}
