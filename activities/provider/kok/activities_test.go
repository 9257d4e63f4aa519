package kok

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kokv1 "kok.dev/api/v1alpha1"
)

func scheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	require.NoError(t, clientgoscheme.AddToScheme(s))
	require.NoError(t, kokv1.AddToScheme(s))
	return s
}

func cluster(mutate func(*kokv1.Cluster)) *kokv1.Cluster {
	c := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "c1"},
		Spec: kokv1.ClusterSpec{
			PackageVersion: "v1.37.2", Provider: kokv1.ProviderKok,
			Masters: kokv1.ClusterMasters{Count: 3},
		},
	}
	if mutate != nil {
		mutate(c)
	}
	return c
}

func cpv(mutate func(*kokv1.ClusterPackageVersion)) *kokv1.ClusterPackageVersion {
	c := &kokv1.ClusterPackageVersion{ObjectMeta: metav1.ObjectMeta{Name: "v1.37.2"}, Spec: releaseSpec(false)}
	if mutate != nil {
		mutate(c)
	}
	return c
}

// pkiSecrets are empty Secrets under every name the control plane of c1 with 3 masters mounts.
func pkiSecrets(t *testing.T) []client.Object {
	objs, err := Render(Input{Cluster: "c1", PackageVersion: "v1.37.2", Release: releaseSpec(true), Masters: 3})
	require.NoError(t, err)
	var out []client.Object
	for _, name := range SecretsUsed(objs) {
		out = append(out, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kok-cluster-c1"}})
	}
	return out
}

// TestEnsureRefuses checks the failures no retry fixes: each is a non-retryable application
// error of its own type, found before anything is written.
func TestEnsureRefuses(t *testing.T) {
	params := EnsureParams{Cluster: "c1", PackageVersion: "v1.37.2"}
	for _, tc := range []struct {
		name    string
		objs    []client.Object
		params  func(*EnsureParams)
		errType string
		message string
	}{
		{name: "no cluster name", params: func(p *EnsureParams) { p.Cluster = "" }, errType: ErrTypeInvalidParams, message: "cluster name is empty"},
		{name: "no version", params: func(p *EnsureParams) { p.PackageVersion = "" }, errType: ErrTypeInvalidParams, message: "no package version named"},
		{name: "no cluster", errType: ErrTypeClusterNotFound, message: "cluster c1 does not exist"},
		{name: "provider process", objs: []client.Object{cluster(func(c *kokv1.Cluster) { c.Spec.Provider = kokv1.ProviderProcess })},
			errType: ErrTypeWrongProvider, message: `cluster c1 has provider "process", not "kok"`},
		{name: "cluster deleting", objs: []client.Object{cluster(func(c *kokv1.Cluster) {
			c.DeletionTimestamp = ptr.To(metav1.Now())
			c.Finalizers = []string{"kok.dev/cluster"}
		})}, errType: ErrTypeClusterDeleting, message: "cluster c1 is being deleted: its control plane is not brought up again"},
		{name: "no package version", objs: []client.Object{cluster(nil)},
			errType: ErrTypePackageVersionNotFound, message: "cluster c1: ClusterPackageVersion v1.37.2 does not exist"},
		{name: "component without image", objs: []client.Object{cluster(nil), cpv(func(c *kokv1.ClusterPackageVersion) { c.Spec.Components[3].Image = "" })},
			errType: ErrTypeInvalidPackageVersion,
			message: "cluster c1: the package version cannot run on provider kok: ClusterPackageVersion v1.37.2: component kube-scheduler has no image; provider kok runs every component as a container image pinned by digest (spec.components[].image)"},
		{name: "override from the Cluster", objs: []client.Object{cpv(nil), cluster(func(c *kokv1.Cluster) {
			c.Spec.Components = []kokv1.ClusterComponent{{Name: kokv1.ComponentKubeScheduler, Args: map[string]string{"kubeconfig": "/mine"}}}
		})}, errType: ErrTypeInvalidSpec,
			message: "cluster c1: the cluster spec cannot run on provider kok: spec.components[kube-scheduler].args: --kubeconfig is set by kok (it wires the control plane together) and cannot be overridden"},
		{name: "override in the params", objs: []client.Object{cpv(nil), cluster(nil)}, params: func(p *EnsureParams) {
			p.Components = []kokv1.ClusterComponent{{Name: kokv1.ComponentEtcd, Args: map[string]string{"data-dir": "/tmp"}}}
		}, errType: ErrTypeInvalidSpec,
			message: "cluster c1: the cluster spec cannot run on provider kok: spec.components[etcd].args: --data-dir is set by kok (it wires the control plane together) and cannot be overridden"},
		{name: "no PKI", objs: []client.Object{cpv(nil), cluster(nil)}, params: func(p *EnsureParams) { p.Masters = 1 }, errType: ErrTypePKIMissing,
			message: "cluster c1: PKI Secrets missing in kok-cluster-c1: c1-apiserver, c1-apiserver-etcd-client, c1-apiserver-kubelet-client, c1-ca, " +
				"c1-controller-manager-kubeconfig, c1-etcd-peer-c1-etcd-0.c1-etcd, c1-etcd-server-c1-etcd-0.c1-etcd, c1-front-proxy-client, c1-sa, " +
				"c1-scheduler-kubeconfig (run EnsureClusterPKI with kok.PKIParams first)"},
		{name: "masters changed", objs: append(pkiSecrets(t), cpv(nil), cluster(nil), &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "c1-etcd", Namespace: "kok-cluster-c1"},
			Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1)},
		}), errType: ErrTypeMastersChanged, message: "cluster c1: etcd runs 1 members, not 3: the kok provider does not change etcd membership"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(scheme(t)).WithObjects(tc.objs...).Build()
			a := &Activities{Client: c}
			p := params
			if tc.params != nil {
				tc.params(&p)
			}
			_, err := a.EnsureControlPlane(context.Background(), p)
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.True(t, appErr.NonRetryable())
			require.Equal(t, tc.errType, appErr.Type())
			require.Equal(t, tc.message, appErr.Message())

			var deployments appsv1.DeploymentList
			require.NoError(t, c.List(context.Background(), &deployments))
			require.Empty(t, deployments.Items, "nothing is written")
		})
	}
}

// TestParamsSurviveTheConverter checks the activities' params and results cross Temporal's
// default data converter whole, including nil and empty Components, which mean different things.
func TestParamsSurviveTheConverter(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	for _, p := range []EnsureParams{
		{Cluster: "c1", PackageVersion: "v1.37.2"},
		{Cluster: "c1", PackageVersion: "v1.37.2", Masters: 3, Network: &kokv1.ClusterNetwork{APIServerPort: 7443}, Components: []kokv1.ClusterComponent{}},
		{Cluster: "c1", PackageVersion: "v1.37.2", Components: []kokv1.ClusterComponent{{Name: kokv1.ComponentEtcd, Args: map[string]string{"v": "2"}}}},
	} {
		payload, err := dc.ToPayload(p)
		require.NoError(t, err)
		var got EnsureParams
		require.NoError(t, dc.FromPayload(payload, &got))
		require.Equal(t, p, got)
		require.Equal(t, p.Components == nil, got.Components == nil)
	}
	st := Status{Cluster: "c1", Ready: true, PackageVersion: "B", Components: []ComponentStatus{{Name: kokv1.ComponentEtcd, Pods: []VersionCount{{PackageVersion: "B", Pods: 3}}}}}
	payload, err := dc.ToPayload(st)
	require.NoError(t, err)
	var got Status
	require.NoError(t, dc.FromPayload(payload, &got))
	require.Equal(t, st, got)
}

func TestStatusAndDeleteOfNothing(t *testing.T) {
	a := &Activities{Client: fake.NewClientBuilder().WithScheme(scheme(t)).Build()}
	st, err := a.ControlPlaneStatus(context.Background(), StatusParams{Cluster: "c1"})
	require.NoError(t, err)
	require.False(t, st.Ready)
	require.Equal(t, "kok-cluster-c1", st.Namespace)
	require.Len(t, st.Components, 4, "the core components, each not found")
	require.Equal(t, "etcd: not found; kube-apiserver: not found; kube-controller-manager: not found; kube-scheduler: not found", st.Message)

	res, err := a.DeleteControlPlane(context.Background(), DeleteParams{Cluster: "c1"})
	require.NoError(t, err)
	require.Empty(t, res.Deleted)
	require.Empty(t, res.Left)

	_, err = a.DeleteControlPlane(context.Background(), DeleteParams{Cluster: "C1!"})
	var appErr *temporal.ApplicationError
	require.True(t, errors.As(err, &appErr) && appErr.Type() == ErrTypeInvalidParams, "%v", err)
}
