package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
)

func TestRecoveriesWithin(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, tc := range []struct {
		name string
		in   []time.Time
		want int
	}{
		{"none", nil, 0},
		{"all recent", []time.Time{ago(50 * time.Minute), ago(time.Minute)}, 2},
		{"an old one drops out", []time.Time{ago(2 * time.Hour), ago(10 * time.Minute)}, 1},
		{"exactly the window is out", []time.Time{ago(time.Hour)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Len(t, RecoveriesWithin(now, tc.in, time.Hour), tc.want)
			require.Equal(t, tc.want >= 1, !DecideHeal(now, tc.in, 1, time.Hour).Recover, "DecideHeal counts the same way")
		})
	}
}

func TestOutcomeCounts(t *testing.T) {
	for o, counts := range map[Outcome]bool{
		OutcomeRepaired: true, OutcomeFailed: true, OutcomeRecoveredByItself: false, "": false,
	} {
		require.Equal(t, counts, o.Counts(), "%q", o)
	}
}

func TestAssess(t *testing.T) {
	masters := []process.Master{{Host: "m1", IP: "10.0.0.1"}, {Host: "m2", IP: "10.0.0.2"}}
	running := map[string]map[string]string{"m1": releaseAll(rel136), "m2": releaseAll(rel136)}
	releases := map[string]controlplane.Release{rel136.Name: rel136}
	ready := controlplane.MasterCheck{Ready: true, GitVersion: "v1.36.1"}
	noAnswer := controlplane.MasterCheck{NoAnswer: true, Why: "kube-apiserver unreachable: i/o timeout"}
	unready := controlplane.MasterCheck{Why: "readyz: [-]etcd failed"}
	checks := func(m1, m2 controlplane.MasterCheck) map[string]controlplane.MasterCheck {
		m1.Host, m2.Host = "m1", "m2"
		return map[string]controlplane.MasterCheck{"m1": m1, "m2": m2}
	}
	agent := func(apiserverRuns bool, withoutScheduler bool) *hostapi.FactsResult {
		f := &hostapi.FactsResult{}
		for _, comp := range components {
			if withoutScheduler && comp == KubeScheduler {
				continue
			}
			f.Installed = append(f.Installed, hostapi.InstalledPackage{
				Name: process.PackageName(clusterName, comp), Version: rel136.Components[comp], ServiceRunning: comp != KubeAPIServer || apiserverRuns,
			})
		}
		return f
	}
	for _, tc := range []struct {
		name              string
		checks            map[string]controlplane.MasterCheck
		facts             map[string]*hostapi.FactsResult
		sick, unreachable []string
	}{
		{name: "every API server ready, agents not asked", checks: checks(ready, ready)},
		{name: "an API server that answers not ready is sick", checks: checks(unready, ready), facts: map[string]*hostapi.FactsResult{"m1": agent(true, false), "m2": agent(true, false)}, sick: []string{"m1"}},
		{name: "no answer and a silent agent: unreachable", checks: checks(noAnswer, noAnswer), facts: map[string]*hostapi.FactsResult{}, unreachable: []string{"m1", "m2"}},
		{name: "no answer but the agent says it runs: unreachable", checks: checks(noAnswer, ready), facts: map[string]*hostapi.FactsResult{"m1": agent(true, false), "m2": agent(true, false)}, unreachable: []string{"m1"}},
		{name: "no answer and the agent says it is down: sick", checks: checks(noAnswer, ready), facts: map[string]*hostapi.FactsResult{"m1": agent(false, false), "m2": agent(true, false)}, sick: []string{"m1"}},
		{name: "a component the agent does not run: sick", checks: checks(unready, ready), facts: map[string]*hostapi.FactsResult{"m1": agent(true, false), "m2": agent(true, true)}, sick: []string{"m1", "m2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Assess(clusterName, masters, running, releases, tc.checks, tc.facts)
			require.Equal(t, tc.sick, a.Sick)
			require.Equal(t, tc.unreachable, a.Unreachable)
			require.Len(t, a.Masters, 2)
			require.Equal(t, len(tc.sick) == 0 && len(tc.unreachable) == 0, a.Healthy())
		})
	}
}

func TestHealthConditionsAgree(t *testing.T) {
	mr := func(h string, ready bool) controlplane.MasterReport {
		return controlplane.MasterReport{Host: h, Ready: ready}
	}
	skew := condition(kokv1.ConditionReady, true, kokv1.ReasonUnsupportedVersionSkew, "still at k8s-1.36.1")
	for _, tc := range []struct {
		name                   string
		a                      Assessment
		ready                  *controlplane.ConditionReport
		readyStatus, degraded  bool
		readyReason, reachable string
		apiServerAvailable     bool
		degradedReason         string
	}{
		{name: "healthy", a: Assessment{Masters: []controlplane.MasterReport{mr("m1", true)}}, readyStatus: true, readyReason: kokv1.ReasonRunning, reachable: kokv1.ReasonReachable, apiServerAvailable: true, degradedReason: kokv1.ReasonHealthy},
		{name: "healthy with a refused skew", a: Assessment{Masters: []controlplane.MasterReport{mr("m1", true)}}, ready: &skew, readyStatus: true, readyReason: kokv1.ReasonUnsupportedVersionSkew, reachable: kokv1.ReasonReachable, apiServerAvailable: true, degradedReason: kokv1.ReasonHealthy},
		{name: "sick", a: Assessment{Masters: []controlplane.MasterReport{mr("m1", false), mr("m2", true)}, Sick: []string{"m1"}}, degraded: true, readyReason: kokv1.ReasonUnhealthy, reachable: kokv1.ReasonReachable, degradedReason: kokv1.ReasonUnhealthy},
		{name: "all unreachable", a: Assessment{Masters: []controlplane.MasterReport{mr("m1", false)}, Unreachable: []string{"m1"}}, readyReason: kokv1.ReasonUnreachable, reachable: kokv1.ReasonUnreachable, degradedReason: kokv1.ReasonUnreachable},
		{name: "one of two unreachable", a: Assessment{Masters: []controlplane.MasterReport{mr("m1", false), mr("m2", true)}, Unreachable: []string{"m1"}}, readyStatus: true, readyReason: kokv1.ReasonRunning, reachable: kokv1.ReasonUnreachable, apiServerAvailable: true, degradedReason: kokv1.ReasonUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := controlplane.ClusterReport{Conditions: HealthConditions(tc.a, "k8s-1.36.1", "https://10.0.0.1:6443", tc.ready)}
			require.Equal(t, tc.readyStatus, condOf(r, kokv1.ConditionReady).Status)
			require.Equal(t, tc.readyReason, condOf(r, kokv1.ConditionReady).Reason)
			require.Equal(t, tc.degraded, condOf(r, kokv1.ConditionDegraded).Status)
			require.Equal(t, tc.degradedReason, condOf(r, kokv1.ConditionDegraded).Reason)
			require.Equal(t, tc.reachable, condOf(r, kokv1.ClusterConditionReachable).Reason)
			if c := condOf(r, kokv1.ClusterConditionAPIServerAvailable); c.Type != "" {
				require.Equal(t, tc.apiServerAvailable, c.Status)
			}
			require.False(t, tc.readyStatus && tc.degraded, "never Ready and Degraded at once")
		})
	}
}

func TestWaitingConditionsFollowTheLastCheck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		a        Assessment
		degraded bool
	}{
		{"still sick", Assessment{Sick: []string{"m1"}}, true},
		{"healthy again", Assessment{}, false},
		{"unreachable", Assessment{Unreachable: []string{"m1"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := controlplane.ClusterReport{Conditions: WaitingConditions(tc.a, "masters [m1] stay unhealthy", "Cluster/c1")}
			require.False(t, condOf(r, kokv1.ConditionReady).Status)
			require.Equal(t, kokv1.ReasonRecoveryLimitReached, condOf(r, kokv1.ConditionReady).Reason)
			require.Contains(t, condOf(r, kokv1.ConditionReady).Message, kokv1.AnnotationResolve)
			require.Equal(t, tc.degraded, condOf(r, kokv1.ConditionDegraded).Status)
		})
	}
}

func TestMovedRendersEachMasterOnce(t *testing.T) {
	running := releaseAll(rel136)
	up, err := ComponentOrder(OpUpgrade, rel136.Components, rel137.Components)
	require.NoError(t, err)
	got := moved(running, up, func(ComponentStep) string { return rel137.Name })
	require.Equal(t, releaseAll(rel137), got, "every step taken moves its component")
	require.Equal(t, releaseAll(rel136), running, "the input is not changed")
	skipped := []ComponentStep{{Component: Etcd, Skip: "kept"}, {Component: KubeAPIServer}}
	got = moved(running, skipped, func(ComponentStep) string { return "x" })
	require.Equal(t, rel136.Name, got[Etcd], "a skipped step keeps its release")
	require.Equal(t, "x", got[KubeAPIServer])
}

func TestSameReportIgnoresTheClock(t *testing.T) {
	a := controlplane.ClusterReport{Name: "c1", Phase: "Running", Now: time.Unix(1, 0), Conditions: []controlplane.ConditionReport{{Type: "Ready", Status: true}}}
	b := a
	b.Now = time.Unix(2, 0)
	require.True(t, sameReport(a, b))
	b.Conditions = []controlplane.ConditionReport{{Type: "Ready"}}
	require.False(t, sameReport(a, b))
}
