package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/pki"
	"kok.dev/activities/provider/kok"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/tests/harness"
)

// TestKokProviderClusterWorkflow is a Cluster with provider kok driven by kok-manager's
// workflow: created (PKI, workloads rolled out on kwok's nodes), upgraded by editing
// spec.packageVersion, and deleted with nothing left in its namespace.
func TestKokProviderClusterWorkflow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a meta cluster with controllers, a scheduler, kwok and kok-manager")
	}
	env := harness.Start(t, harness.Options{Manager: true})
	eventually := harness.RunWorkloads(t, env)
	ctx := context.Background()
	c := env.Client
	for _, v := range []struct{ name, hex string }{{"v1.36.3", "a"}, {"v1.37.2", "b"}} {
		require.NoError(t, c.Create(ctx, harness.FakeRelease(v.name, v.hex)))
	}
	// Two clusters at once, served by one kok-manager: h2 is only created and deleted.
	for _, name := range []string{"h1", "h2"} {
		require.NoError(t, c.Create(ctx, &kokv1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: kokv1.ClusterSpec{
				PackageVersion: "v1.36.3", Provider: kokv1.ProviderKok, Masters: kokv1.ClusterMasters{Count: 3},
				Health: kokv1.ClusterHealth{CheckInterval: &metav1.Duration{Duration: 5 * time.Second}},
			},
		}))
	}
	getNamed := func(name string) *kokv1.Cluster {
		var cl kokv1.Cluster
		require.NoError(t, c.Get(ctx, client.ObjectKey{Name: name}, &cl))
		return &cl
	}
	get := func() *kokv1.Cluster { return getNamed("h1") }
	runningNamed := func(name, version string) {
		t.Helper()
		eventually(2*time.Minute, func(context.Context) error {
			st := getNamed(name).Status
			if st.Phase != kokv1.ClusterRunning || st.CurrentPackageVersion != version || st.ReadyMasters != 3 {
				return fmt.Errorf("phase %s current %q ready %d operation %+v conditions %+v%s",
					st.Phase, st.CurrentPackageVersion, st.ReadyMasters, st.Operation, st.Conditions, harness.PendingPods(c, pki.Namespace(name)))
			}
			return nil
		})
	}
	running := func(version string) { t.Helper(); runningNamed("h1", version) }
	running("v1.36.3")
	runningNamed("h2", "v1.36.3")
	require.NotEqual(t, getNamed("h1").Status.Endpoint, getNamed("h2").Status.Endpoint)
	require.NoError(t, c.Delete(ctx, getNamed("h2")))
	cl := get()
	require.Equal(t, kok.APIServerURL("h1", "", 6443), cl.Status.Endpoint)
	require.NotNil(t, cl.Status.KubeconfigSecretRef)
	require.Len(t, cl.Status.Masters, 3)
	for _, comp := range cl.Status.Masters[0].Components {
		require.True(t, comp.Ready, "%+v", comp)
	}

	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cl := get()
		cl.Spec.PackageVersion = "v1.37.2"
		return c.Update(ctx, cl)
	}))
	running("v1.37.2")
	require.Equal(t, "v1.36.3", get().Status.PreviousPackageVersion)

	require.NoError(t, c.Delete(ctx, get()))
	for _, name := range []string{"h1", "h2"} {
		eventually(2*time.Minute, func(ctx context.Context) error {
			err := c.Get(ctx, client.ObjectKey{Name: name}, &kokv1.Cluster{})
			if !apierrors.IsNotFound(err) {
				return fmt.Errorf("cluster %s still there (%w)", name, err)
			}
			return nil
		})
		var pods corev1.PodList
		require.NoError(t, c.List(ctx, &pods, client.InNamespace(pki.Namespace(name))))
		require.Empty(t, pods.Items, name)
		var secrets corev1.SecretList
		require.NoError(t, c.List(ctx, &secrets, client.MatchingLabels{pki.LabelCluster: name}))
		require.Empty(t, secrets.Items, name)
	}
}
