package machine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
)

func TestComposeStatus(t *testing.T) {
	want := []hostapi.PackageSpec{pkg("runtime", "1"), pkg("kubelet", "v1", "runtime")}
	running := []kube.ComponentReport{
		{Name: "kubelet", Version: "v1", Phase: string(kokv1.ComponentRunning)},
		{Name: "runtime", Version: "1", Phase: string(kokv1.ComponentRunning)},
	}
	d := kube.MachineDesired{Found: true, Generation: 3, Host: "h1", Packages: want}
	sched := &schedVerdict{Schedulable: true, Reason: kokv1.ReasonAllGatesPassed, Message: "ok"}
	type check struct {
		typ, status, reason, msg string // msg: a substring
	}
	for _, tc := range []struct {
		name   string
		o      observation
		phase  kokv1.MachinePhase
		checks []check
	}{{
		name:  "converged",
		o:     observation{Desired: d, AgentAnswered: true, Components: running, Sched: sched},
		phase: kokv1.MachineReady,
		checks: []check{
			{kokv1.ConditionReady, "True", kokv1.ReasonSucceeded, "every package"},
			{kokv1.MachineConditionAgentConnected, "True", kokv1.ReasonPolling, "h1"},
			{kokv1.MachineConditionSchedulable, "True", kokv1.ReasonAllGatesPassed, "ok"},
			{kokv1.ConditionProgressing, "False", kokv1.ReasonSucceeded, ""},
		},
	}, {
		name:  "a package remembered as failed",
		o:     observation{Desired: d, AgentAnswered: true, Components: running, Sched: sched, Failed: map[string]string{"kubelet@v2": "kubelet v2: sha256 mismatch"}},
		phase: kokv1.MachineDegraded,
		checks: []check{
			{kokv1.MachineConditionPackagesInSync, "False", kokv1.ReasonFailed, "sha256 mismatch"},
		},
	}, {
		name:  "agent absent",
		o:     observation{Desired: d, Wait: waitAgent, WaitMessage: "the agent of host h1 did not answer", Components: running, Sched: sched},
		phase: kokv1.MachineNotReady,
		checks: []check{
			{kokv1.MachineConditionAgentConnected, "False", kokv1.ReasonAgentAbsent, "did not answer"},
			{kokv1.ConditionProgressing, "True", kokv1.ReasonAgentAbsent, "did not answer"},
			{kokv1.MachineConditionSchedulable, "True", kokv1.ReasonAllGatesPassed, ""},
		},
	}, {
		name:  "artifact unavailable",
		o:     observation{Desired: d, AgentAnswered: true, Wait: waitArtifact, WaitMessage: "503", Components: running},
		phase: kokv1.MachineProvisioning,
		checks: []check{
			{kokv1.ConditionProgressing, "True", kokv1.ReasonArtifactUnavailable, "503"},
			{kokv1.MachineConditionAgentConnected, "True", kokv1.ReasonPolling, ""},
		},
	}, {
		name:  "node not registered",
		o:     observation{Desired: d, AgentAnswered: true, Wait: waitNode, WaitMessage: "node n1 is not registered yet", Components: running},
		phase: kokv1.MachineReady,
		checks: []check{
			{kokv1.MachineConditionSchedulable, "False", kokv1.ReasonNodeNotRegistered, "not registered"},
		},
	}, {
		name:   "step in progress",
		o:      observation{Desired: d, AgentAnswered: true, Step: "step 1/2: install runtime 1"},
		phase:  kokv1.MachineProvisioning,
		checks: []check{{kokv1.ConditionProgressing, "True", kokv1.ReasonInProgress, "step 1/2"}},
	}, {
		name:   "paused",
		o:      observation{Desired: kube.MachineDesired{Paused: true}},
		phase:  kokv1.MachinePaused,
		checks: []check{{kokv1.ConditionProgressing, "False", kokv1.ReasonPaused, "spec.paused"}},
	}, {
		name:   "unresolvable spec",
		o:      observation{Desired: kube.MachineDesired{ResolveErrors: []string{"MachinePackageVersion kubelet-v9 does not exist"}}},
		phase:  kokv1.MachineBlocked,
		checks: []check{{kokv1.MachineConditionPackagesInSync, "False", kokv1.ReasonNotFound, "kubelet-v9"}},
	}, {
		name:   "unplannable spec",
		o:      observation{Desired: d, AgentAnswered: true, PlanError: "dependency cycle among packages a, b"},
		phase:  kokv1.MachineBlocked,
		checks: []check{{kokv1.MachineConditionPackagesInSync, "False", kokv1.ReasonInvalidSpec, "cycle"}},
	}, {
		name:   "malformed condition maps",
		o:      observation{Desired: kube.MachineDesired{ConditionNotes: []string{"cm x: bad status"}}, Components: nil},
		phase:  kokv1.MachineReady,
		checks: []check{{kokv1.MachineConditionConditionMapsValid, "False", kokv1.ReasonMalformed, "bad status"}},
	}, {
		name:   "tearing down, agent absent",
		o:      observation{Desired: d, Deleting: true, Wait: waitAgent, WaitMessage: "annotate kok.dev/orphan=true"},
		phase:  kokv1.MachineDeleting,
		checks: []check{{kokv1.ConditionProgressing, "True", kokv1.ReasonAgentAbsent, "kok.dev/orphan"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := composeStatus(tc.o)
			require.Equal(t, string(tc.phase), r.Phase)
			for _, c := range tc.checks {
				got := condOf(r, c.typ)
				require.Equal(t, c.status, got.Status, c.typ)
				require.Equal(t, c.reason, got.Reason, c.typ)
				require.Contains(t, got.Message, c.msg, c.typ)
			}
		})
	}
}

func TestReportHashIgnoresTheClock(t *testing.T) {
	r := kube.MachineReport{Name: "n1", Phase: "Ready", Now: time.Unix(1, 0), LastDriftCheck: time.Unix(2, 0)}
	later := r
	later.Now, later.LastDriftCheck = time.Unix(100, 0), time.Unix(200, 0)
	require.Equal(t, reportHash(r), reportHash(later))
	later.Phase = "Degraded"
	require.NotEqual(t, reportHash(r), reportHash(later))
	withInputs := r
	withInputs.ObservedInputs = "x"
	require.NotEqual(t, reportHash(r), reportHash(withInputs), "new inputs are written")
}

func TestAtRestComponents(t *testing.T) {
	want := []hostapi.PackageSpec{pkg("a", "1"), pkg("b", "1"), pkg("c", "1"), pkg("d", "2")}
	res := hostapi.InspectHostResult{
		Installed: []hostapi.InstalledPackage{{Name: "a", Version: "1", ServiceRunning: true}, {Name: "b", Version: "1", ServiceRunning: true}, {Name: "d", Version: "1", ServiceRunning: true}},
		Unhealthy: []hostapi.PackageHealth{{Name: "b", Version: "1", Message: "probe failed"}},
	}
	comps, serving := atRestComponents(want, res, map[string]string{"d@2": "d 2: sha256 mismatch"})
	require.Equal(t, []kube.ComponentReport{
		{Name: "a", Version: "1", Phase: string(kokv1.ComponentRunning)},
		{Name: "b", Version: "1", Phase: string(kokv1.ComponentFailed), Message: "unhealthy: probe failed"},
		{Name: "c", Phase: string(kokv1.ComponentPending), Message: "not installed"},
		{Name: "d", Version: "1", Phase: string(kokv1.ComponentFailed), Message: "d 2: sha256 mismatch"},
	}, comps)
	require.Equal(t, map[string]bool{"a": true, "b": false, "c": false, "d": true}, serving, "d still serves at its old version")
}

func TestClassify(t *testing.T) {
	require.Equal(t, waitAgent, classify(temporalTimeout()))
	require.Equal(t, waitArtifact, classify(appErr(errTypeArtifactUnavailable)))
	for _, typ := range []string{hostapi.ErrTypeChecksumMismatch, hostapi.ErrTypeBadSpec, hostapi.ErrTypeInstallFailed} {
		require.Equal(t, waitNone, classify(appErr(typ)), typ)
	}
	require.Equal(t, waitRetry, classify(appErr("SomethingElse")))
}

func temporalTimeout() error {
	return temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)
}

func appErr(typ string) error { return temporal.NewApplicationError("x", typ) }
