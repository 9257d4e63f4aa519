package kube_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/tests/harness"
)

// One API server for the package: each test uses its own object names.
func TestKubeActivities(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real API server")
	}
	env := harness.Start(t, harness.Options{})
	c := env.Client
	ctx := context.Background()
	a := &kube.Activities{Client: c}
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(a)
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kube.ConditionNamespace}}))

	t.Run("SetNodeSchedulable is idempotent and refuses a missing node", func(t *testing.T) {
		require.NoError(t, c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n-sched"}, Spec: corev1.NodeSpec{Unschedulable: true}}))
		for i, want := range []bool{true, false} { // first call changes, second is a no-op
			val, err := aenv.ExecuteActivity(a.SetNodeSchedulable, kube.SetNodeSchedulableParams{Node: "n-sched", Schedulable: true})
			require.NoError(t, err)
			var res kube.SetNodeSchedulableResult
			require.NoError(t, val.Get(&res))
			require.Equal(t, want, res.Changed, "call %d", i)
		}
		var n corev1.Node
		require.NoError(t, c.Get(ctx, types.NamespacedName{Name: "n-sched"}, &n))
		require.False(t, n.Spec.Unschedulable)

		_, err := aenv.ExecuteActivity(a.SetNodeSchedulable, kube.SetNodeSchedulableParams{Node: "absent", Schedulable: true})
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.Equal(t, kube.ErrTypeNodeNotFound, appErr.Type())
		require.True(t, appErr.NonRetryable())
	})

	t.Run("ReadMachine resolves packages, names missing ones, reads gates", func(t *testing.T) {
		require.NoError(t, c.Create(ctx, &kokv1.MachinePackageVersion{
			ObjectMeta: metav1.ObjectMeta{Name: "runtime-1.0"},
			Spec: kokv1.MachinePackageVersionSpec{
				Package: "runtime", Version: "1.0",
				Artifact:    &kokv1.Artifact{URL: "file:///pkgs/runtime-1.0.tar.gz", SHA256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
				Service:     &kokv1.Service{Command: []string{"bin/runtime"}, Env: []kokv1.EnvVar{{Name: "A", Value: "b"}}},
				HealthCheck: &kokv1.Probe{TCP: &kokv1.TCPProbe{Address: "127.0.0.1:1"}},
			},
		}))
		m := &kokv1.Machine{
			ObjectMeta: metav1.ObjectMeta{Name: "n-read"},
			Spec: kokv1.MachineSpec{
				Packages:       []kokv1.PackageRef{{Name: "runtime", Version: "1.0"}, {Name: "kubelet", Version: "v9.9.9"}},
				ReadinessGates: []kokv1.ReadinessGate{{ConditionType: "NetworkReady"}},
				Isolations:     []kokv1.Isolation{{Requester: "alice", Reason: "disk check"}},
			},
		}
		require.NoError(t, c.Create(ctx, m))
		require.NoError(t, c.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: kube.ConditionNamespace, Name: "n-read-net", Labels: map[string]string{kube.LabelNode: "n-read", kube.LabelReporter: "net"}},
			Data:       map[string]string{"NetworkReady": "False", "NetworkReady.message": "cni missing"},
		}))

		val, err := aenv.ExecuteActivity(a.ReadMachine, kube.ReadMachineParams{Name: "n-read"})
		require.NoError(t, err)
		var d kube.MachineDesired
		require.NoError(t, val.Get(&d))
		require.True(t, d.Found)
		require.Equal(t, "n-read", d.Host)
		require.Equal(t, kube.DefaultDriftInterval, d.DriftInterval, "the CRD default")
		require.Len(t, d.Packages, 1)
		got := d.Packages[0]
		require.Equal(t, "runtime", got.Name)
		require.Equal(t, "local", got.Installer)
		require.Equal(t, "Component", got.Type)
		require.Equal(t, "runtime", got.Service.Name, "service name defaults to the package")
		require.Equal(t, "Always", got.Service.RestartPolicy)
		require.Equal(t, map[string]string{"A": "b"}, got.Service.Env)
		require.Equal(t, "127.0.0.1:1", got.HealthCheck.TCPAddress)
		require.Equal(t, []string{"package kubelet version v9.9.9: MachinePackageVersion kubelet-v9.9.9 does not exist"}, d.ResolveErrors)
		require.Equal(t, []kube.GateSpec{{Type: "NetworkReady", Mode: "Continuous"}}, d.Gates)
		require.Equal(t, []string{"alice"}, d.Isolations)
		require.Len(t, d.Conditions, 1)
		require.Equal(t, "False", d.Conditions[0].Status)
		require.Equal(t, "cni missing", d.Conditions[0].Message)

		val, err = aenv.ExecuteActivity(a.ReadMachine, kube.ReadMachineParams{Name: "gone"})
		require.NoError(t, err)
		require.NoError(t, val.Get(&d))
		require.False(t, d.Found)
	})

	t.Run("ReportMachineStatus writes status and keeps transition times", func(t *testing.T) {
		require.NoError(t, c.Create(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "n-report"}}))
		t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
		report := kube.MachineReport{
			Name: "n-report", ObservedGeneration: 1, Phase: "Ready", Schedulable: true, Now: t0,
			Components:         []kube.ComponentReport{{Name: "kubelet", Version: "v1", Phase: "Running"}, {Name: "containerd", Version: "1.7", Phase: "Running"}},
			Conditions:         []kube.ConditionReport{{Type: "Ready", Status: "True", Reason: "Succeeded", Message: "ok"}},
			ReportedConditions: []kube.ReportedCondition{{Type: "NetworkReady", Status: "True", Reporter: "net"}},
		}
		_, err := aenv.ExecuteActivity(a.ReportMachineStatus, report)
		require.NoError(t, err)
		report.Now = t0.Add(time.Hour)
		_, err = aenv.ExecuteActivity(a.ReportMachineStatus, report)
		require.NoError(t, err)

		var m kokv1.Machine
		require.NoError(t, c.Get(ctx, client.ObjectKey{Name: "n-report"}, &m))
		require.Equal(t, kokv1.MachineReady, m.Status.Phase)
		require.True(t, m.Status.Schedulable)
		require.Equal(t, "containerd=1.7,kubelet=v1", m.Status.Versions)
		ready := meta.FindStatusCondition(m.Status.Conditions, "Ready")
		require.NotNil(t, ready)
		require.True(t, ready.LastTransitionTime.Time.Equal(t0), "an unchanged condition keeps its transition time")
		net := meta.FindStatusCondition(m.Status.Conditions, "NetworkReady")
		require.NotNil(t, net)
		require.Equal(t, "reported by net", net.Message)
	})

	t.Run("RecordMachineEvent is idempotent by key", func(t *testing.T) {
		require.NoError(t, c.Create(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "n-event"}}))
		p := kube.MachineEventParams{Machine: "n-event", Key: "wf/run/1/kubelet", Type: "Warning", Reason: "DriftCorrected", Message: "kubelet v1: restarted stopped service kubelet", Time: time.Now()}
		for range 2 {
			_, err := aenv.ExecuteActivity(a.RecordMachineEvent, p)
			require.NoError(t, err)
		}
		var evs corev1.EventList
		require.NoError(t, c.List(ctx, &evs, client.InNamespace("default")))
		n := 0
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == "n-event" {
				n++
				require.Equal(t, "Machine", e.InvolvedObject.Kind)
				require.Equal(t, p.Message, e.Message)
			}
		}
		require.Equal(t, 1, n)
	})

	t.Run("ReleaseMachine deletes the node and removes the finalizer", func(t *testing.T) {
		require.NoError(t, c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n-release"}}))
		require.NoError(t, c.Create(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "n-release", Finalizers: []string{kube.MachineFinalizer}}}))
		require.NoError(t, c.Delete(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "n-release"}}))
		for range 2 {
			_, err := aenv.ExecuteActivity(a.ReleaseMachine, kube.ReleaseMachineParams{Name: "n-release", DeleteNode: true})
			require.NoError(t, err)
		}
		harness.Eventually(t, 10*time.Second, func(ctx context.Context) error {
			var m kokv1.Machine
			if err := c.Get(ctx, client.ObjectKey{Name: "n-release"}, &m); err == nil {
				return errStill("machine")
			}
			var n corev1.Node
			if err := c.Get(ctx, client.ObjectKey{Name: "n-release"}, &n); err == nil {
				return errStill("node")
			}
			return nil
		})
	})

	t.Run("ReleaseMachine leaves a Machine recreated under the same name alone", func(t *testing.T) {
		require.NoError(t, c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n-uid"}}))
		m := &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "n-uid", Finalizers: []string{kube.MachineFinalizer},
			Annotations: map[string]string{kokv1.AnnotationRetry: "r1", kokv1.AnnotationOrphan: "true"}}}
		require.NoError(t, c.Create(ctx, m))
		val, err := aenv.ExecuteActivity(a.ReadMachine, kube.ReadMachineParams{Name: "n-uid"})
		require.NoError(t, err)
		var d kube.MachineDesired
		require.NoError(t, val.Get(&d))
		require.Equal(t, string(m.UID), d.UID)
		require.Equal(t, "r1", d.Retry)
		require.True(t, d.Orphan, "the orphan annotation orphans")

		_, err = aenv.ExecuteActivity(a.ReleaseMachine, kube.ReleaseMachineParams{Name: "n-uid", DeleteNode: true, UID: "some-older-uid"})
		require.NoError(t, err)
		var got kokv1.Machine
		require.NoError(t, c.Get(ctx, client.ObjectKey{Name: "n-uid"}, &got))
		require.Contains(t, got.Finalizers, kube.MachineFinalizer, "another UID's finalizer is not removed")
		var n corev1.Node
		require.NoError(t, c.Get(ctx, client.ObjectKey{Name: "n-uid"}, &n), "another UID's Node is not deleted")

		_, err = aenv.ExecuteActivity(a.ReportMachineStatus, kube.MachineReport{Name: "n-uid", Phase: string(kokv1.MachineReady), ObservedInputs: "in-1", Now: time.Now()})
		require.NoError(t, err)
		require.NoError(t, c.Get(ctx, client.ObjectKey{Name: "n-uid"}, &got))
		require.Equal(t, "in-1", got.Status.ObservedInputs)

		_, err = aenv.ExecuteActivity(a.ReleaseMachine, kube.ReleaseMachineParams{Name: "n-uid", DeleteNode: true, UID: string(m.UID)})
		require.NoError(t, err)
		require.NoError(t, c.Get(ctx, client.ObjectKey{Name: "n-uid"}, &got))
		require.NotContains(t, got.Finalizers, kube.MachineFinalizer)
	})
}

type errStill string

func (e errStill) Error() string { return string(e) + " still exists" }
