package kubelet

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kok.dev/tests/harness"
)

func TestKubeletKeepsItsNodeAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	env := harness.Start(t, harness.Options{})
	c := env.Client
	ctx := context.Background()

	run := func() (*Kubelet, context.CancelFunc) {
		k, err := New(env.Config, Options{NodeName: "sim-1", Version: "v1.37.2", LeaseDuration: 4 * time.Second, StatusInterval: 300 * time.Millisecond})
		require.NoError(t, err)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = k.Run(runCtx); close(done) }()
		return k, func() { cancel(); <-done }
	}
	k, stop := run()

	var node corev1.Node
	require.Eventually(t, func() bool {
		return c.Get(ctx, types.NamespacedName{Name: "sim-1"}, &node) == nil && ready(node) == corev1.ConditionTrue
	}, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, "true", node.Labels[LabelSimulated])
	require.Equal(t, KwokNodeValue, node.Annotations[AnnotationKwokNode])
	require.Equal(t, "v1.37.2", node.Status.NodeInfo.KubeletVersion)
	require.Equal(t, "110", node.Status.Capacity.Pods().String())
	require.True(t, node.Spec.Unschedulable, "a new node is born cordoned: only its Machine workflow uncordons it")
	require.Equal(t, corev1.NodeInternalIP, node.Status.Addresses[0].Type)
	require.NoError(t, k.Healthy())

	var lease coordinationv1.Lease
	require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: corev1.NamespaceNodeLease, Name: "sim-1"}, &lease))
	require.Equal(t, "sim-1", *lease.Spec.HolderIdentity)
	require.EqualValues(t, 4, *lease.Spec.LeaseDurationSeconds)
	require.Equal(t, node.UID, lease.OwnerReferences[0].UID)
	first := lease.Spec.RenewTime.Time
	require.Eventually(t, func() bool {
		return c.Get(ctx, types.NamespacedName{Namespace: corev1.NamespaceNodeLease, Name: "sim-1"}, &lease) == nil && lease.Spec.RenewTime.After(first)
	}, 10*time.Second, 50*time.Millisecond, "the lease is renewed")

	// The node lifecycle controller marks a silent node Unknown; a live kubelet puts it back.
	setReady(t, env, corev1.ConditionUnknown)
	require.Eventually(t, func() bool {
		return c.Get(ctx, types.NamespacedName{Name: "sim-1"}, &node) == nil && ready(node) == corev1.ConditionTrue
	}, 10*time.Second, 50*time.Millisecond)

	// A restarted kubelet adopts the node and leaves its spec (cordon, taints) alone.
	stop()
	node.Spec.Unschedulable = true
	node.Spec.Taints = []corev1.Taint{{Key: "kok.dev/maintenance", Effect: corev1.TaintEffectNoSchedule}}
	require.NoError(t, c.Update(ctx, &node))
	_, stop = run()
	defer stop()
	setReady(t, env, corev1.ConditionUnknown)
	require.Eventually(t, func() bool {
		return c.Get(ctx, types.NamespacedName{Name: "sim-1"}, &node) == nil && ready(node) == corev1.ConditionTrue
	}, 10*time.Second, 50*time.Millisecond)
	require.True(t, node.Spec.Unschedulable)
	require.Len(t, node.Spec.Taints, 1)
}

func ready(n corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func setReady(t *testing.T, env *harness.Env, s corev1.ConditionStatus) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var node corev1.Node
		if err := env.Client.Get(ctx, types.NamespacedName{Name: "sim-1"}, &node); err != nil {
			return false
		}
		for i := range node.Status.Conditions {
			if node.Status.Conditions[i].Type == corev1.NodeReady {
				node.Status.Conditions[i].Status = s
				node.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
		}
		return env.Client.Status().Update(ctx, &node) == nil
	}, 10*time.Second, 20*time.Millisecond)
}

func TestFakeIPIsStableAndPrivate(t *testing.T) {
	require.Equal(t, fakeIP("w1"), fakeIP("w1"))
	require.NotEqual(t, fakeIP("w1"), fakeIP("w2"))
	require.Regexp(t, `^10\.(1[2-9][0-9]|2[0-5][0-9])\.\d+\.\d+$`, fakeIP("some-node"))
}
