package kubelet

import (
	"context"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"

	"kok.dev/tests/harness"
)

func TestKubelet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	env := harness.Start(t, harness.Options{})
	t.Run("keeps its node alive", func(t *testing.T) { testKeepsNodeAlive(t, env) })
	t.Run("requests like a real kubelet", func(t *testing.T) { testRequestsLikeARealKubelet(t, env) })
}

func testKeepsNodeAlive(t *testing.T, env *harness.Env) {
	c := env.Client
	ctx := context.Background()
	client, err := kubernetes.NewForConfig(env.Config)
	require.NoError(t, err)

	run := func() (*Kubelet, context.CancelFunc) {
		k := New(client, "sim-1", Options{Version: "v1.37.2", LeaseDuration: 4 * time.Second, StatusInterval: 300 * time.Millisecond})
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
	require.Eventually(t, func() bool { return k.Healthy() == nil }, 10*time.Second, 20*time.Millisecond)

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
	setReady(t, env, "sim-1", corev1.ConditionUnknown)
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
	setReady(t, env, "sim-1", corev1.ConditionUnknown)
	require.Eventually(t, func() bool {
		return c.Get(ctx, types.NamespacedName{Name: "sim-1"}, &node) == nil && ready(node) == corev1.ConditionTrue
	}, 10*time.Second, 50*time.Millisecond)
	require.True(t, node.Spec.Unschedulable)
	require.Len(t, node.Spec.Taints, 1)
}

// testRequestsLikeARealKubelet drives one kubelet with a fake clock at a real kubelet's
// intervals and counts its requests by verb and resource over 5 minutes.
func testRequestsLikeARealKubelet(t *testing.T, env *harness.Env) {
	ctx := context.Background()
	counts := &requestCounter{n: map[string]int{}}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return counts.wrap(rt) })
	client, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	fc := clocktesting.NewFakeClock(time.Now())
	k := New(client, "sim-count", Options{Clock: fc}) // 40 s lease, 10 s checks, 5 min reports
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = k.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	// Registration: the Node, the Lease (looked for once, then created) and a first status.
	counts.await(t, map[string]int{"POST nodes": 1, "GET leases": 1, "POST leases": 1, "GET nodes": 1, "PUT nodes/status": 1})
	require.Eventually(t, func() bool { return fc.Waiters() >= 2 }, 10*time.Second, 5*time.Millisecond, "the two tickers")
	require.NoError(t, k.Healthy())

	// 5 minutes of a quiet node: a Lease update every 10 s without a read, a cached read of the
	// Node every 10 s, and one status write, when the 5 minutes are up.
	for i := 1; i <= 30; i++ {
		fc.Step(10 * time.Second)
		counts.await(t, map[string]int{"PUT leases": i, "GET nodes": 1 + i})
	}
	counts.await(t, map[string]int{"PUT nodes/status": 2})
	require.Equal(t, map[string]int{
		"POST nodes": 1, "GET nodes": 31, "PUT nodes/status": 2,
		"GET leases": 1, "POST leases": 1, "PUT leases": 30,
	}, counts.snapshot())

	// Someone else wrote the Lease: the update conflicts, the kubelet reads it once and retries.
	var lease coordinationv1.Lease
	require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Namespace: corev1.NamespaceNodeLease, Name: "sim-count"}, &lease))
	lease.Labels = map[string]string{"touched": "yes"}
	require.NoError(t, env.Client.Update(ctx, &lease))
	// The node lifecycle controller marked the node Unknown: the next check writes the status.
	setReady(t, env, "sim-count", corev1.ConditionUnknown)
	require.Eventually(t, func() bool {
		n, err := client.CoreV1().Nodes().Get(ctx, "sim-count", metav1.GetOptions{ResourceVersion: "0"})
		return err == nil && ready(*n) == corev1.ConditionUnknown
	}, 10*time.Second, 10*time.Millisecond, "the API server's cache has the change the kubelet reads")
	base := counts.snapshot()
	fc.Step(10 * time.Second)
	counts.await(t, map[string]int{"GET leases": base["GET leases"] + 1, "PUT leases": base["PUT leases"] + 2, "PUT nodes/status": base["PUT nodes/status"] + 1})
	var node corev1.Node
	require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Name: "sim-count"}, &node))
	require.Equal(t, corev1.ConditionTrue, ready(node))

	// A kubelet that stops renewing is unhealthy once its Lease has run out.
	cancel()
	<-done
	fc.Step(41 * time.Second)
	require.ErrorContains(t, k.Healthy(), "lease of node sim-count not renewed since")
}

// requestCounter counts a client's requests by verb and resource ("PUT nodes/status").
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
		res := ""
		for i, p := range parts {
			if p == "nodes" || p == "leases" {
				res = p
				if i+2 < len(parts) {
					res += "/" + parts[i+2]
				}
			}
		}
		// Counted once answered, so that a test seeing the count sees the request's effect.
		resp, err := rt.RoundTrip(req)
		c.mu.Lock()
		c.n[req.Method+" "+res]++
		c.mu.Unlock()
		return resp, err
	})
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// await waits until each count reaches its value.
func (c *requestCounter) await(t *testing.T, want map[string]int) {
	t.Helper()
	require.Eventually(t, func() bool {
		got := c.snapshot()
		for k, v := range want {
			if got[k] < v {
				return false
			}
		}
		return true
	}, 10*time.Second, 2*time.Millisecond, "requests %v", want)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func ready(n corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

func setReady(t *testing.T, env *harness.Env, name string, s corev1.ConditionStatus) {
	t.Helper()
	ctx := context.Background()
	require.Eventually(t, func() bool {
		var node corev1.Node
		if err := env.Client.Get(ctx, types.NamespacedName{Name: name}, &node); err != nil {
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
