package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/pki"
	"kok.dev/activities/provider/kok"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/tests/harness"
)

// TestKokProviderControlPlane is the kok provider below the Cluster workflow: its activities,
// called as the workflow calls them (through Temporal's test activity environment, so params and
// results cross the data converter), bring a 3-master control plane up at one release, roll it
// to another and delete it, in a meta cluster that runs the workloads for real as far as the API
// goes: envtest's kube-apiserver and etcd, the real kube-controller-manager (Deployments,
// ReplicaSets, StatefulSets, garbage collection) and kube-scheduler, and kwok as the kubelets of
// three fake nodes (pods become Running and Ready; no container runs, so images need not exist).
func TestKokProviderControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a meta cluster with controllers, a scheduler and kwok")
	}
	env := harness.Start(t, harness.Options{})
	began := time.Now()
	ctx := context.Background()
	c := env.Client

	eventually := harness.RunWorkloads(t, env)

	// Two releases: what differs is only the images (fake digests: kwok pulls nothing).
	for _, v := range []struct{ name, hex string }{{"v1.36.3", "a"}, {"v1.37.2", "b"}} {
		require.NoError(t, c.Create(ctx, harness.FakeRelease(v.name, v.hex)))
	}
	cluster := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "c1"},
		Spec: kokv1.ClusterSpec{
			PackageVersion: "v1.36.3", Provider: kokv1.ProviderKok,
			Masters:    kokv1.ClusterMasters{Count: 3},
			Components: []kokv1.ClusterComponent{{Name: kokv1.ComponentKubeAPIServer, Args: map[string]string{"audit-log-maxage": "7"}}},
		},
	}
	require.NoError(t, c.Create(ctx, cluster))
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(cluster), cluster)) // with the API's defaults

	a := &kok.Activities{Client: c, Operator: &kok.Operator{
		TemporalAddress: "temporal.kok-system:7233", TemporalNamespace: "kok", CodecKeys: []byte("test codec keys"),
	}}
	p := &pki.Activities{Client: c}
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(a)
	aenv.RegisterActivity(p)
	call := func(activity, params, result any) {
		t.Helper()
		val, err := aenv.ExecuteActivity(activity, params)
		require.NoError(t, err)
		require.NoError(t, val.Get(result))
	}
	ensure := func(params kok.EnsureParams) kok.EnsureResult {
		t.Helper()
		var res kok.EnsureResult
		call(a.EnsureControlPlane, params, &res)
		return res
	}
	status := func(ctx context.Context, version string) (kok.Status, error) {
		val, err := aenv.ExecuteActivity(a.ControlPlaneStatus, kok.StatusParams{Cluster: "c1", PackageVersion: version})
		if err != nil {
			return kok.Status{}, err
		}
		var st kok.Status
		return st, val.Get(&st)
	}

	// 1. The PKI, as the workflow makes it for this provider.
	pkiParams, err := kok.PKIParams("c1", "", cluster.Spec.Masters.Count, cluster.Spec.Network)
	require.NoError(t, err)
	var pkiRes pki.EnsureClusterPKIResult
	call(p.EnsureClusterPKI, pkiParams, &pkiRes)

	// 2. Create at v1.36.3, with the spec the workflow passes; a second call changes nothing.
	res := ensure(kok.EnsureParams{
		Cluster: "c1", PackageVersion: "v1.36.3",
		Masters: cluster.Spec.Masters.Count, Network: &cluster.Spec.Network, Components: cluster.Spec.Components,
	})
	all := []string{
		"Service/c1-etcd", "StatefulSet/c1-etcd", "Service/c1-kube-apiserver", "Deployment/c1-kube-apiserver",
		"Deployment/c1-kube-controller-manager", "Deployment/c1-kube-scheduler",
		"Secret/c1-machine-operator-codec", "Deployment/c1-machine-operator",
	}
	require.Equal(t, all, res.Objects)
	require.Equal(t, all, res.Created)
	require.Empty(t, res.Updated)
	again := ensure(kok.EnsureParams{Cluster: "c1", PackageVersion: "v1.36.3"})
	require.False(t, again.Changed(), "applying the same render again writes nothing: %+v", again)

	waitReady := func(version string) kok.Status {
		t.Helper()
		var st kok.Status
		eventually(40*time.Second, func(ctx context.Context) error {
			var err error
			if st, err = status(ctx, version); err != nil {
				return err
			}
			if !st.Ready {
				return fmt.Errorf("%s%s", st.Message, harness.PendingPods(c, "kok-cluster-c1"))
			}
			return nil
		})
		return st
	}
	st := waitReady("v1.36.3")
	t.Logf("control plane at v1.36.3 ready %s after start", time.Since(began).Round(time.Millisecond))
	require.Equal(t, "v1.36.3", st.PackageVersion)
	require.Len(t, st.Components, 5)
	for _, comp := range st.Components {
		require.True(t, comp.Ready, "%s: %s", comp.Name, comp.Message)
		require.Equal(t, int32(3), comp.DesiredReplicas, comp.Name)
		require.Equal(t, int32(3), comp.ReadyReplicas, comp.Name)
		require.Equal(t, []kok.VersionCount{{PackageVersion: "v1.36.3", Pods: 3}}, comp.Pods, comp.Name)
	}
	require.Equal(t, "v3.6.8", st.Components[0].Version, "etcd's own version")

	var etcdPods corev1.PodList
	require.NoError(t, c.List(ctx, &etcdPods, client.InNamespace("kok-cluster-c1"), client.MatchingLabels{kok.LabelComponent: "etcd"}))
	require.Len(t, etcdPods.Items, 3)
	nodes := map[string]bool{}
	for _, pod := range etcdPods.Items {
		nodes[pod.Spec.NodeName] = true
		require.Equal(t, corev1.PodRunning, pod.Status.Phase, pod.Name)
		require.Equal(t, harness.FakeImage("etcd", "a"), pod.Spec.Containers[0].Image)
		require.Equal(t, "c1-etcd", pod.Spec.Subdomain, "the headless Service gives each member its DNS name")
	}
	require.Len(t, nodes, 3, "etcd members spread over the nodes")

	// 3. Upgrade to v1.37.2: the workflow names the version; the spec comes from the Cluster.
	res = ensure(kok.EnsureParams{Cluster: "c1", PackageVersion: "v1.37.2"})
	require.Empty(t, res.Created)
	require.Equal(t, []string{
		"StatefulSet/c1-etcd", "Deployment/c1-kube-apiserver", "Deployment/c1-kube-controller-manager",
		"Deployment/c1-kube-scheduler", "Deployment/c1-machine-operator",
	}, res.Updated, "Services and the codec Secret do not change with the release")
	upgraded := time.Now()
	st = waitReady("v1.37.2")
	t.Logf("rollout to v1.37.2 done in %s", time.Since(upgraded).Round(time.Millisecond))
	require.Equal(t, "v1.37.2", st.PackageVersion)
	require.Equal(t, "v3.7.0", st.Components[0].Version)
	st, err = status(ctx, "v1.36.3")
	require.NoError(t, err)
	require.False(t, st.Ready)
	require.Contains(t, st.Message, "etcd: rendered from v1.37.2, not v1.36.3")

	// 4. Payload encryption turned off in the worker's configuration: the codec Secret goes
	// (Ensure prunes what the render no longer has), the operator rolls without it.
	a.Operator.CodecKeys = nil
	res = ensure(kok.EnsureParams{Cluster: "c1", PackageVersion: "v1.37.2"})
	require.Equal(t, []string{"Deployment/c1-machine-operator"}, res.Updated)
	require.Equal(t, []string{"Secret/c1-machine-operator-codec"}, res.Deleted)
	waitReady("v1.37.2")

	// 5. Delete, until nothing is left; the PKI stays for DeleteClusterPKI.
	var del kok.DeleteResult
	call(a.DeleteControlPlane, kok.DeleteParams{Cluster: "c1"}, &del)
	require.ElementsMatch(t, slices.DeleteFunc(all, func(o string) bool { return strings.HasPrefix(o, "Secret/") }), del.Deleted)
	eventually(30*time.Second, func(ctx context.Context) error {
		call(a.DeleteControlPlane, kok.DeleteParams{Cluster: "c1"}, &del)
		if len(del.Left) > 0 {
			return fmt.Errorf("left: %s", strings.Join(del.Left, ", "))
		}
		return nil
	})
	require.Empty(t, del.Deleted, "a later call has nothing more to delete")
	var secrets corev1.SecretList
	require.NoError(t, c.List(ctx, &secrets, client.InNamespace("kok-cluster-c1"), client.HasLabels{pki.LabelPKI}))
	require.Len(t, secrets.Items, len(pkiRes.Secrets), "the PKI is not the provider's to delete")
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}
