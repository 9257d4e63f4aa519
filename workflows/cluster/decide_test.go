package cluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDecideOperation(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Observed
		want Decision
	}{
		{"new cluster", Observed{TargetVersion: "v1.37.2"}, Decision{Op: OpCreate}},
		{"deleting wins", Observed{Created: true, Deleting: true, CurrentVersion: "v1.36.5", TargetVersion: "v1.37.2"}, Decision{Op: OpDelete}},
		{"deleting before created", Observed{Deleting: true}, Decision{Op: OpDelete}},
		{"at spec", Observed{Created: true, CurrentVersion: "v1.37.2", TargetVersion: "v1.37.2"}, Decision{Op: OpNone}},
		{"patch upgrade", Observed{Created: true, CurrentVersion: "v1.37.1", TargetVersion: "v1.37.2"}, Decision{Op: OpUpgrade}},
		{"minor upgrade", Observed{Created: true, CurrentVersion: "v1.36.5", TargetVersion: "v1.37.2"}, Decision{Op: OpUpgrade}},
		{"minor rollback", Observed{Created: true, CurrentVersion: "v1.37.2", TargetVersion: "v1.36.5"}, Decision{Op: OpRollback}},
		{"patch rollback", Observed{Created: true, CurrentVersion: "v1.37.2", TargetVersion: "v1.37.1"}, Decision{Op: OpRollback}},
		{"two minors up", Observed{Created: true, CurrentVersion: "v1.35.0", TargetVersion: "v1.37.2"}, Decision{Op: OpNone, Refused: "v1.35.0 -> v1.37.2 skips a minor version: upgrade one minor version at a time"}},
		{"two minors down", Observed{Created: true, CurrentVersion: "v1.37.2", TargetVersion: "v1.35.0"}, Decision{Op: OpNone, Refused: "v1.37.2 -> v1.35.0 rolls back more than one minor version"}},
		{"major change", Observed{Created: true, CurrentVersion: "v1.37.2", TargetVersion: "v2.0.0"}, Decision{Op: OpNone, Refused: "cannot change major version v1.37.2 -> v2.0.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, DecideOperation(tc.in))
		})
	}
	bad := DecideOperation(Observed{Created: true, CurrentVersion: "v1.37.2", TargetVersion: "latest"})
	require.Equal(t, OpNone, bad.Op)
	require.Contains(t, bad.Refused, `target version "latest" is not a Kubernetes version`)
}

func TestComponentOrder(t *testing.T) {
	v136 := map[string]string{Etcd: "3.6.5", KubeAPIServer: "v1.36.5", KubeControllerManager: "v1.36.5", KubeScheduler: "v1.36.5", MachineOperator: "0.1.0"}
	v137 := map[string]string{Etcd: "3.7.0", KubeAPIServer: "v1.37.2", KubeControllerManager: "v1.37.2", KubeScheduler: "v1.37.2", MachineOperator: "0.1.0"}
	names := func(steps []ComponentStep) []string {
		var out []string
		for _, s := range steps {
			n := s.Component
			if s.Skip != "" {
				n += " (skipped)"
			}
			out = append(out, n)
		}
		return out
	}

	up, err := ComponentOrder(OpUpgrade, v136, v137)
	require.NoError(t, err)
	require.Equal(t, []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler}, names(up), "nothing newer than the apiserver; unchanged components have no step")

	down, err := ComponentOrder(OpRollback, v137, v136)
	require.NoError(t, err)
	require.Equal(t, []string{KubeScheduler, KubeControllerManager, KubeAPIServer, Etcd + " (skipped)"}, names(down))
	require.Equal(t, "etcd stays at 3.7.0: data written by etcd 3.7.0 cannot be read by 3.6.5 after a restart, and the target release works with the newer etcd", down[3].Skip)

	create, err := ComponentOrder(OpCreate, nil, v137)
	require.NoError(t, err)
	require.Equal(t, []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, MachineOperator}, names(create))

	_, err = ComponentOrder(OpUpgrade, v136, map[string]string{Etcd: "3.7.0"})
	require.EqualError(t, err, "target release has no kube-apiserver")
}

func TestUpgradeOrder(t *testing.T) {
	order, refused := UpgradeOrder([]MasterHealth{{Host: "m3", Healthy: true}, {Host: "m1", Healthy: true}, {Host: "m2", Healthy: true}})
	require.Empty(t, refused)
	require.Equal(t, []string{"m1", "m2", "m3"}, order, "canary first, the same one on every retry")

	order, refused = UpgradeOrder([]MasterHealth{{Host: "m1", Healthy: true}, {Host: "m2", Why: "readyz 500"}})
	require.Nil(t, order)
	require.Equal(t, "masters are unhealthy, heal them first: [m2 (readyz 500)]", refused)
}

func TestDecideHeal(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	for _, tc := range []struct {
		name       string
		recoveries []time.Time
		want       HealDecision
	}{
		{"first failure", nil, HealDecision{Recover: true, Reason: "automatic recovery 1 of 3 in 1h0m0s"}},
		{"old recoveries do not count", []time.Time{ago(2 * time.Hour), ago(3 * time.Hour), ago(90 * time.Minute)}, HealDecision{Recover: true, Reason: "automatic recovery 1 of 3 in 1h0m0s"}},
		{"third within the window", []time.Time{ago(time.Minute), ago(10 * time.Minute)}, HealDecision{Recover: true, Reason: "automatic recovery 3 of 3 in 1h0m0s"}},
		{"limit reached", []time.Time{ago(time.Minute), ago(10 * time.Minute), ago(20 * time.Minute)}, HealDecision{Escalate: true, Reason: "3 automatic recoveries in the last 1h0m0s (limit 3): waiting for a human to resolve"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, DecideHeal(now, tc.recoveries, 3, time.Hour))
		})
	}
}

func TestDecideNextIsTheSameForBothProviders(t *testing.T) {
	at := func(cur, curKube, tgt, tgtKube string) Move {
		return Move{Created: true, Current: cur, CurrentKube: curKube, Target: tgt, TargetKube: tgtKube}
	}
	for _, tc := range []struct {
		name    string
		m       Move
		op      Operation
		refused string
	}{
		{"never created", Move{Target: "k8s-1.36.1", TargetKube: "v1.36.1"}, OpCreate, ""},
		{"at the target", at("k8s-1.36.1", "v1.36.1", "k8s-1.36.1", "v1.36.1"), OpNone, ""},
		{"one minor up", at("k8s-1.36.1", "v1.36.1", "k8s-1.37.0", "v1.37.0"), OpUpgrade, ""},
		{"one minor down", at("k8s-1.37.0", "v1.37.0", "k8s-1.36.1", "v1.36.1"), OpRollback, ""},
		{"a rebuilt release of the same Kubernetes version", at("k8s-1.36.1", "v1.36.1", "k8s-1.36.1-b", "v1.36.1"), OpUpgrade, ""},
		{"two minors up is refused", at("k8s-1.36.1", "v1.36.1", "k8s-1.38.0", "v1.38.0"), OpNone, "v1.36.1 -> v1.38.0 skips a minor version: upgrade one minor version at a time"},
		{"the running release's entry is gone", at("k8s-old", "", "k8s-1.37.0", "v1.37.0"), OpUpgrade, ""},
		{"failed at this generation", func() Move { m := at("k8s-1.36.1", "v1.36.1", "k8s-1.37.0", "v1.37.0"); m.FailedHere = true; return m }(), OpNone, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideNext(tc.m)
			require.Equal(t, tc.op, d.Op)
			require.Equal(t, tc.refused, d.Refused)
		})
	}
}
