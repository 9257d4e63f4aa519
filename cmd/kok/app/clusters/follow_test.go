package clusters

import (
	"testing"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kokv1 "kok.dev/api/v1alpha1"
)

// status builds a Cluster status for the progress tables: phase, current version, observed
// generation, then options.
func status(phase kokv1.ClusterPhase, current string, observed int64, opts ...func(*kokv1.ClusterStatus)) kokv1.ClusterStatus {
	s := kokv1.ClusterStatus{Phase: phase, CurrentPackageVersion: current, ObservedGeneration: observed}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func target(v string) func(*kokv1.ClusterStatus) {
	return func(s *kokv1.ClusterStatus) { s.TargetPackageVersion = v }
}

func operation(typ kokv1.ClusterOperationType, step, msg string) func(*kokv1.ClusterStatus) {
	return func(s *kokv1.ClusterStatus) {
		s.Operation = &kokv1.ClusterOperation{Type: typ, Step: step, Message: msg, CanaryHost: "m1"}
	}
}

func ready(ok bool, reason, msg string, observed int64) func(*kokv1.ClusterStatus) {
	return func(s *kokv1.ClusterStatus) {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		s.Conditions = append(s.Conditions, metav1.Condition{Type: kokv1.ConditionReady, Status: st, Reason: reason, Message: msg, ObservedGeneration: observed})
	}
}

// step is one look at the Cluster and what it must say: the line printed ("" for none), done,
// and the error ("" for none).
type step struct {
	status kokv1.ClusterStatus
	line   string
	done   bool
	err    string
}

func TestProgress(t *testing.T) {
	const v1, v2 = "v1.37.2", "v1.38.0"
	healthy := ready(true, "Running", "serving", 1)
	upgrading := status(kokv1.ClusterUpgrading, v1, 2, target(v2), operation(kokv1.ClusterOperationUpgrade, "canary master m1", "kube-apiserver v1.37.2 -> v1.38.0"))
	for _, tc := range []struct {
		name string
		// edited is the status right after the edit to v2 at generation 2.
		edited kokv1.ClusterStatus
		steps  []step
	}{{
		name:   "upgrade completes",
		edited: status(kokv1.ClusterRunning, v1, 1, healthy),
		steps: []step{
			{status: status(kokv1.ClusterRunning, v1, 1, healthy), line: "Running at v1.37.2"},
			{status: status(kokv1.ClusterRunning, v1, 1, healthy)},
			{status: upgrading, line: `Upgrading: Upgrade step "canary master m1" (canary m1): kube-apiserver v1.37.2 -> v1.38.0`},
			{status: status(kokv1.ClusterUpgrading, v1, 2, target(v2), operation(kokv1.ClusterOperationUpgrade, "canary master m1", "waiting")),
				line: `Upgrading: Upgrade step "canary master m1" (canary m1): waiting`},
			{status: status(kokv1.ClusterUpgrading, v1, 2, target(v2), operation(kokv1.ClusterOperationUpgrade, "canary master m1", "waiting"))},
			{status: status(kokv1.ClusterUpgrading, v1, 2, target(v2), operation(kokv1.ClusterOperationUpgrade, "master m2 (2 of 3)", "")),
				line: `Upgrading: Upgrade step "master m2 (2 of 3)" (canary m1)`},
			// Every master moved, the operation not yet cleared: not done before it is.
			{status: status(kokv1.ClusterRunning, v2, 2, target(v2), operation(kokv1.ClusterOperationUpgrade, "master m3 (3 of 3)", "")),
				line: `Running: Upgrade step "master m3 (3 of 3)" (canary m1)`},
			{status: status(kokv1.ClusterRunning, v2, 2), line: "Running at v1.38.0", done: true},
		},
	}, {
		name:   "the workflow reads the edit before it starts the upgrade",
		edited: status(kokv1.ClusterRunning, v1, 1, healthy),
		steps: []step{
			{status: status(kokv1.ClusterRunning, v1, 2, ready(true, "Running", "serving", 2)), line: "Running at v1.37.2"},
			{status: upgrading, line: `Upgrading: Upgrade step "canary master m1" (canary m1): kube-apiserver v1.37.2 -> v1.38.0`},
		},
	}, {
		name:   "rolled back after a failed health check",
		edited: status(kokv1.ClusterRunning, v1, 1, healthy),
		steps: []step{
			{status: upgrading, line: `Upgrading: Upgrade step "canary master m1" (canary m1): kube-apiserver v1.37.2 -> v1.38.0`},
			{status: status(kokv1.ClusterRollingBack, v1, 2, target(v2), operation(kokv1.ClusterOperationRollback, "roll back m1", "")),
				line: `RollingBack: Rollback step "roll back m1" (canary m1)`},
			{status: status(kokv1.ClusterRunning, v1, 2, ready(true, kokv1.ReasonRolledBack, "Upgrade to v1.38.0 failed: m1 not ready", 2)),
				line: "Running at v1.37.2",
				err:  `cluster "prod" settled Running at v1.37.2, not v1.38.0: RolledBack: Upgrade to v1.38.0 failed: m1 not ready`},
		},
	}, {
		name:   "an upgrade and its rollback between two looks",
		edited: status(kokv1.ClusterRunning, v1, 1, healthy),
		steps: []step{
			{status: status(kokv1.ClusterRunning, v1, 2, ready(true, kokv1.ReasonRolledBack, "Upgrade to v1.38.0 failed", 2)), line: "Running at v1.37.2",
				err: `cluster "prod" settled Running at v1.37.2, not v1.38.0: RolledBack: Upgrade to v1.38.0 failed`},
		},
	}, {
		name: "a rollback of an earlier edit is not this edit's outcome",
		edited: status(kokv1.ClusterRunning, v1, 1, func(s *kokv1.ClusterStatus) {
			ready(true, kokv1.ReasonRolledBack, "Upgrade to v1.37.9 failed", 1)(s)
		}),
		steps: []step{
			// The workflow re-reports the old condition at the new generation before it starts.
			{status: status(kokv1.ClusterRunning, v1, 2, ready(true, kokv1.ReasonRolledBack, "Upgrade to v1.37.9 failed", 2)), line: "Running at v1.37.2"},
			{status: upgrading, line: `Upgrading: Upgrade step "canary master m1" (canary m1): kube-apiserver v1.37.2 -> v1.38.0`},
		},
	}, {
		name: "asked again for a version already rolled back from",
		// No edit: the spec asked for v2 before, and the status describes generation 2.
		edited: status(kokv1.ClusterRunning, v1, 2, ready(true, kokv1.ReasonRolledBack, "Upgrade to v1.38.0 failed", 2)),
		steps: []step{
			{status: status(kokv1.ClusterRunning, v1, 2, ready(true, kokv1.ReasonRolledBack, "Upgrade to v1.38.0 failed", 2)), line: "Running at v1.37.2",
				err: `cluster "prod" settled Running at v1.37.2, not v1.38.0: RolledBack: Upgrade to v1.38.0 failed`},
		},
	}, {
		name:   "a failure from before the edit is not its outcome; a new one is",
		edited: status(kokv1.ClusterFailed, v1, 1, ready(false, kokv1.ReasonFailed, "etcd lost quorum", 1)),
		steps: []step{
			{status: status(kokv1.ClusterFailed, v1, 1, ready(false, kokv1.ReasonFailed, "etcd lost quorum", 1)), line: "Failed at v1.37.2"},
			{status: status(kokv1.ClusterFailed, v1, 1, ready(false, kokv1.ReasonFailed, "etcd lost quorum", 1))},
			{status: status(kokv1.ClusterFailed, v1, 2, ready(false, kokv1.ReasonFailed, "etcd lost quorum", 2)),
				err: `cluster "prod" is Failed: Failed: etcd lost quorum; kok describe cluster prod shows its conditions, events and workflow`},
		},
	}, {
		name:   "stops for a human",
		edited: status(kokv1.ClusterRunning, v1, 1, healthy),
		steps: []step{
			{status: upgrading, line: `Upgrading: Upgrade step "canary master m1" (canary m1): kube-apiserver v1.37.2 -> v1.38.0`},
			{status: status(kokv1.ClusterWaitingForHuman, v1, 2, target(v2), ready(false, kokv1.ReasonWaitingForHuman, "Upgrade to v1.38.0 failed (spec.upgrade.autoRollback is false)", 2)),
				line: "WaitingForHuman at v1.37.2",
				err:  `cluster "prod" is WaitingForHuman: WaitingForHuman: Upgrade to v1.38.0 failed (spec.upgrade.autoRollback is false); kok waits for you to act: kok describe cluster prod shows what happened and the workflow to signal`},
		},
	}, {
		name:   "a heal in flight at the edit ends before the upgrade starts",
		edited: status(kokv1.ClusterHealing, v1, 1, operation(kokv1.ClusterOperationHeal, "restart kube-apiserver on m1", ""), ready(false, "Healing", "m1 unhealthy", 1)),
		steps: []step{
			{status: status(kokv1.ClusterRunning, v1, 1, ready(true, kokv1.ReasonSucceeded, "healed", 1)), line: "Running at v1.37.2"},
			{status: upgrading, line: `Upgrading: Upgrade step "canary master m1" (canary m1): kube-apiserver v1.37.2 -> v1.38.0`},
		},
	}, {
		name:   "running the version asked for, but the status is older than the edit",
		edited: status(kokv1.ClusterRunning, v2, 1),
		steps: []step{
			{status: status(kokv1.ClusterRunning, v2, 1), line: "Running at v1.38.0"},
			{status: status(kokv1.ClusterRunning, v2, 2), done: true},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := &kokv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod", Generation: 2}, Status: tc.edited}
			p := newProgress(c, v2)
			for i, s := range tc.steps {
				c.Status = s.status
				o := p.observe(c)
				require.Equal(t, s.line, o.line, "step %d: line", i)
				require.Equal(t, s.done, o.done, "step %d: done", i)
				if s.err == "" {
					require.NoError(t, o.err, "step %d", i)
				} else {
					require.EqualError(t, o.err, s.err, "step %d", i)
				}
			}
		})
	}
}

func TestProgressOfADeletedCluster(t *testing.T) {
	c := &kokv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod", Generation: 2}}
	p := newProgress(c, "v1.38.0")
	c.DeletionTimestamp = &metav1.Time{}
	require.EqualError(t, p.observe(c).err, `cluster "prod" is being deleted`)
}

func TestRollbackTarget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   kokv1.ClusterStatus
		version  string
		why, err string
	}{
		{name: "after an upgrade", status: kokv1.ClusterStatus{CurrentPackageVersion: "b", PreviousPackageVersion: "a"},
			version: "a", why: "the version it ran before"},
		{name: "during an upgrade", status: kokv1.ClusterStatus{CurrentPackageVersion: "b", PreviousPackageVersion: "a", TargetPackageVersion: "c"},
			version: "b", why: "the version it ran before the move to c in flight"},
		{name: "target equal to current is no operation", status: kokv1.ClusterStatus{CurrentPackageVersion: "b", PreviousPackageVersion: "a", TargetPackageVersion: "b"},
			version: "a", why: "the version it ran before"},
		{name: "during the create", status: kokv1.ClusterStatus{TargetPackageVersion: "a"},
			err: `cluster "prod" has no version to roll back to: it is being created at a and runs no version yet`},
		{name: "never upgraded", status: kokv1.ClusterStatus{CurrentPackageVersion: "a"},
			err: `cluster "prod" has no version to roll back to: no upgrade or rollback has completed (status.previousPackageVersion is empty) and none is in flight; name one with --to VERSION`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, why, err := rollbackTarget(&kokv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Status: tc.status})
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.version, v)
			require.Equal(t, tc.why, why)
		})
	}
}

func TestNoKubeconfigError(t *testing.T) {
	c := &kokv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod"}, Status: kokv1.ClusterStatus{Phase: kokv1.ClusterCreating}}
	ref, reported := adminKubeconfigRef(c)
	require.False(t, reported)
	require.Equal(t, kokv1.SecretKeyRef{Namespace: "kok-cluster-prod", Name: "prod-admin-kubeconfig", Key: "kubeconfig"}, ref)
	require.EqualError(t, noKubeconfigError(c, ref, reported, false), `cluster "prod" has no admin kubeconfig yet (phase Creating): wait for it to be Running`)

	c.Status.Phase = ""
	require.EqualError(t, noKubeconfigError(c, ref, reported, true), `cluster "prod" has no admin kubeconfig yet (phase <none>): wait for it to be Running`)

	c.Status.Phase = kokv1.ClusterRunning
	require.EqualError(t, noKubeconfigError(c, ref, reported, true),
		`cluster "prod" is Running but has no admin kubeconfig: status.kubeconfigSecretRef is not set and Secret kok-cluster-prod/prod-admin-kubeconfig has no key "kubeconfig"`)

	c.Status.KubeconfigSecretRef = &kokv1.SecretKeyRef{Namespace: "vault", Name: "prod-admin", Key: "config"}
	ref, reported = adminKubeconfigRef(c)
	require.True(t, reported)
	require.EqualError(t, noKubeconfigError(c, ref, reported, false),
		`cluster "prod" has no admin kubeconfig: its status.kubeconfigSecretRef names it, but Secret vault/prod-admin does not exist; kok describe cluster prod shows what kok reports`)
}
