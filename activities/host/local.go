package host

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"kok.dev/contract/hostapi"
)

// The local loop keeps the host at the specs it last applied, on the agent's own clock and
// without Temporal: a Machine at rest then costs one InspectHost per workflow interval instead
// of a pass of 4+2N activities every few minutes (docs/design/2026-12-02-agent-local-loop.md).
const (
	// DefaultLocalCheckInterval is how often the local loop runs (kok-agent
	// --local-check-interval).
	DefaultLocalCheckInterval = 90 * time.Second
	// localJitter spreads rounds by ±10% so that agents started together do not stay in step.
	localJitter = 0.1
	// firstRoundAfter bounds the wait before the first round: soon after the agent starts, but
	// not at once, so that services StartInstalledServices just started have a moment.
	firstRoundAfter = 10 * time.Second
	// maxRepairs is how many repairs the state file keeps for InspectHost: a workflow inspects
	// every ~15 minutes, and even a service crashing every round adds only 10 in that time.
	maxRepairs = 256
)

// RunLocalLoop runs a local round every interval (jittered ±10%; 0 means the default) until
// ctx ends, the first one shortly after it is called. Call it after StartInstalledServices. It
// is a function, not a method, so that it is never taken for an activity.
func RunLocalLoop(ctx context.Context, a *Activities, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultLocalCheckInterval
	}
	wait := jitter(min(interval, firstRoundAfter))
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		r := a.localRound(ctx)
		switch {
		case r.skipped != "":
			a.log().Debug("local round skipped", "why", r.skipped)
		case len(r.repairs) > 0 || len(r.unhealthy) > 0:
			a.log().Info("local round", "repairs", len(r.repairs), "unhealthy", len(r.unhealthy))
		}
		wait = jitter(interval)
	}
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 - localJitter + 2*localJitter*rand.Float64()))
}

// roundResult is what one local round did.
type roundResult struct {
	// skipped says why the round did nothing ("" when it ran).
	skipped   string
	repairs   []hostapi.LocalRepair
	unhealthy []hostapi.PackageHealth
}

// localRound applies, to every installed package, the same-version repair EnsurePackage makes
// (restart a stopped service, rewrite a drifted config or sysctl file, reinstall missing
// files), records each repair with the next Seq in the state file and the journal, and then
// runs each package's health check once. It never waits for the host lock: when an activity
// holds it, or a change is recorded as pending, the round is skipped, so the loop never fights
// an install in progress. It installs, upgrades and removes nothing: what is installed is the
// workflow's to decide.
func (a *Activities) localRound(ctx context.Context) roundResult {
	unlock, ok := a.tryAcquire()
	if !ok {
		return roundResult{skipped: "an activity holds the host lock"}
	}
	st, err := a.loadState()
	if err != nil {
		unlock()
		a.log().Error("local round: cannot read the agent state", "err", err)
		return roundResult{skipped: err.Error()}
	}
	if len(st.Pending) > 0 {
		unlock()
		return roundResult{skipped: fmt.Sprintf("a change of %s is under way", st.pendingNames())}
	}

	// 1. Repair, under the host lock.
	var res roundResult
	failed := map[string]string{}
	repaired := map[string]bool{}
	at := time.Now().UTC().Format(time.RFC3339)
	for _, name := range st.names() {
		if ctx.Err() != nil {
			break
		}
		rec := st.Packages[name]
		r, err := a.repair(ctx, st, rec, rec.Spec, rec.Received)
		for _, what := range r.Repairs {
			st.RepairSeq++
			res.repairs = append(res.repairs, hostapi.LocalRepair{Seq: st.RepairSeq, Package: name, Version: rec.Spec.Version, What: what, At: at})
			repaired[name] = true
		}
		if err != nil && ctx.Err() == nil {
			a.log().Warn("local repair failed; the next round tries again", "package", name, "version", rec.Spec.Version, "err", err)
			a.journal(name, rec.Spec.Version, "repair-failed", err.Error())
			failed[name] = err.Error()
		}
	}
	if len(res.repairs) > 0 {
		st.Repairs = append(st.Repairs, res.repairs...)
		if n := len(st.Repairs) - maxRepairs; n > 0 {
			st.Repairs = append([]hostapi.LocalRepair(nil), st.Repairs[n:]...)
		}
		if err := a.saveState(st); err != nil {
			a.log().Error("local round: cannot record repairs", "err", err, "repairs", res.repairs)
		}
	}
	unlock()

	// 2. Health, outside the lock: a probe may take seconds, and a workflow's change must not
	// wait for it. A package repaired just now is checked next round (its service is only
	// starting); one whose repair failed is unhealthy for that reason.
	health := map[string]hostapi.PackageHealth{}
	for _, name := range st.names() {
		spec := st.Packages[name].Spec
		if msg, ok := failed[name]; ok {
			health[name] = hostapi.PackageHealth{Name: name, Version: spec.Version, Message: "local repair failed: " + msg}
			continue
		}
		if repaired[name] || ctx.Err() != nil {
			continue
		}
		if err := a.checkLocal(ctx, spec); err != nil {
			health[name] = hostapi.PackageHealth{Name: name, Version: spec.Version, Message: err.Error()}
		}
	}
	if ctx.Err() != nil {
		return res
	}
	a.mu.Lock()
	a.health = health
	a.mu.Unlock()
	res.unhealthy = a.unhealthy(st)
	return res
}

// checkLocal runs spec's check once, as CheckHealth without Wait does.
func (a *Activities) checkLocal(ctx context.Context, spec hostapi.PackageSpec) error {
	if spec.Service != nil && a.Services == nil {
		_, err := a.services()
		return err
	}
	return a.checkOnce(ctx, spec)
}

func (s *hostState) pendingNames() []string {
	names := make([]string, 0, len(s.Pending))
	for n := range s.Pending {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
