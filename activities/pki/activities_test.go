package pki_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/pki"
	clusterpki "kok.dev/internal/pki"
	"kok.dev/tests/harness"
)

func request(masters ...clusterpki.Master) clusterpki.Request {
	return clusterpki.Request{Masters: masters, ServiceIP: "10.96.0.1", ExtraSANs: []string{"api.example"}}
}

var (
	m1 = clusterpki.Master{Name: "m1", IP: "10.0.0.1"}
	m2 = clusterpki.Master{Name: "m2", IP: "10.0.0.2"}
	m3 = clusterpki.Master{Name: "m3", IP: "10.0.0.3"}
)

const server = "https://api.example:6443"

// One API server for the package: each test uses its own cluster name.
func TestPKIActivities(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real API server")
	}
	env := harness.Start(t, harness.Options{})
	c := env.Client
	ctx := context.Background()
	a := &pki.Activities{Client: c}
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(a)

	ensure := func(t *testing.T, p pki.EnsureClusterPKIParams) pki.EnsureClusterPKIResult {
		t.Helper()
		val, err := aenv.ExecuteActivity(a.EnsureClusterPKI, p)
		require.NoError(t, err)
		var res pki.EnsureClusterPKIResult
		require.NoError(t, val.Get(&res))
		out, err := json.Marshal(res)
		require.NoError(t, err)
		require.NotContains(t, string(out), "PRIVATE KEY")
		require.NotContains(t, string(out), "CERTIFICATE")
		return res
	}
	// versions maps each PKI Secret of a cluster to its resourceVersion.
	versions := func(t *testing.T, cluster string) map[string]string {
		t.Helper()
		var list corev1.SecretList
		require.NoError(t, c.List(ctx, &list, client.InNamespace(pki.Namespace(cluster)), client.HasLabels{pki.LabelPKI}))
		out := map[string]string{}
		for _, s := range list.Items {
			out[s.Name] = s.ResourceVersion
		}
		return out
	}
	secret := func(t *testing.T, cluster, part string) *corev1.Secret {
		t.Helper()
		var s corev1.Secret
		require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: pki.Namespace(cluster), Name: pki.SecretName(cluster, part)}, &s))
		return &s
	}
	appErrorType := func(t *testing.T, err error) string {
		t.Helper()
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.True(t, appErr.NonRetryable())
		return appErr.Type()
	}

	t.Run("first run creates everything, second changes nothing", func(t *testing.T) {
		p := pki.EnsureClusterPKIParams{Cluster: "one", Request: request(m1), Server: server}
		res := ensure(t, p)

		want := []string{"one-admin", "one-admin-kubeconfig", "one-apiserver", "one-apiserver-etcd-client",
			"one-apiserver-kubelet-client", "one-ca", "one-controller-manager", "one-controller-manager-kubeconfig",
			"one-etcd-ca", "one-etcd-peer-m1", "one-etcd-server-m1", "one-front-proxy-ca", "one-front-proxy-client",
			"one-sa", "one-scheduler", "one-scheduler-kubeconfig"}
		require.Equal(t, "kok-cluster-one", res.Namespace)
		require.Equal(t, want, res.Secrets)
		require.Equal(t, want, res.Written)
		require.Empty(t, res.Deleted)

		var ns corev1.Namespace
		require.NoError(t, c.Get(ctx, types.NamespacedName{Name: "kok-cluster-one"}, &ns))
		require.Equal(t, "one", ns.Labels[pki.LabelCluster])
		for _, name := range want {
			var s corev1.Secret
			require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: res.Namespace, Name: name}, &s))
			require.Equal(t, "one", s.Labels[pki.LabelCluster], name)
			require.NotEmpty(t, s.Labels[pki.LabelPKI], name)
		}

		ca := secret(t, "one", clusterpki.CA)
		require.Equal(t, corev1.SecretTypeTLS, ca.Type)
		fp, err := clusterpki.Fingerprint(ca.Data[corev1.TLSCertKey])
		require.NoError(t, err)
		require.Equal(t, fp, res.CAFingerprint)
		require.Equal(t, secret(t, "one", clusterpki.EtcdCA).Data[corev1.TLSCertKey],
			secret(t, "one", clusterpki.EtcdServer("m1")).Data[pki.KeyCACert], "an etcd certificate carries the etcd CA")

		kc := secret(t, "one", pki.KubeconfigPart(clusterpki.Admin))
		cfg, err := clientcmd.Load(kc.Data[pki.KeyKubeconfig])
		require.NoError(t, err)
		rest, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
		require.NoError(t, err)
		require.Equal(t, server, rest.Host)
		require.Equal(t, ca.Data[corev1.TLSCertKey], rest.CAData)
		require.Equal(t, secret(t, "one", clusterpki.Admin).Data[corev1.TLSCertKey], rest.CertData)

		before := versions(t, "one")
		again := ensure(t, p)
		require.Empty(t, again.Written)
		require.Empty(t, again.Deleted)
		require.Equal(t, res.Secrets, again.Secrets)
		require.Equal(t, res.CAFingerprint, again.CAFingerprint)
		require.Equal(t, before, versions(t, "one"), "a second run must not write")
	})

	t.Run("a deleted Secret is reissued without touching the CA", func(t *testing.T) {
		p := pki.EnsureClusterPKIParams{Cluster: "two", Request: request(m1), Server: server}
		first := ensure(t, p)
		before := versions(t, "two")
		for _, part := range []string{clusterpki.APIServer, pki.KubeconfigPart(clusterpki.Scheduler)} {
			require.NoError(t, c.Delete(ctx, secret(t, "two", part)))
		}

		res := ensure(t, p)
		require.Equal(t, []string{"two-apiserver", "two-scheduler-kubeconfig"}, res.Written)
		require.Equal(t, first.CAFingerprint, res.CAFingerprint)
		after := versions(t, "two")
		for name, rv := range before {
			if name != "two-apiserver" && name != "two-scheduler-kubeconfig" {
				require.Equal(t, rv, after[name], "%s must be untouched", name)
			}
		}
		require.Equal(t, secret(t, "two", clusterpki.CA).Data[corev1.TLSCertKey],
			secret(t, "two", clusterpki.APIServer).Data[pki.KeyCACert])
	})

	t.Run("a replaced master gets its etcd certificates, the old ones go, the CAs stay", func(t *testing.T) {
		p := pki.EnsureClusterPKIParams{Cluster: "three", Request: request(m1, m2), Server: server}
		first := ensure(t, p)
		before := versions(t, "three")

		p.Request = request(m1, m3)
		res := ensure(t, p)
		require.Equal(t, []string{"three-apiserver", "three-etcd-peer-m3", "three-etcd-server-m3"}, res.Written)
		require.Equal(t, []string{"three-etcd-peer-m2", "three-etcd-server-m2"}, res.Deleted)
		require.Equal(t, first.CAFingerprint, res.CAFingerprint)
		after := versions(t, "three")
		for _, name := range []string{"three-ca", "three-etcd-ca", "three-front-proxy-ca", "three-sa", "three-etcd-server-m1"} {
			require.Equal(t, before[name], after[name], name)
		}
		require.NotContains(t, after, "three-etcd-server-m2")
	})

	t.Run("a CA of the user's own is adopted", func(t *testing.T) {
		own, err := clusterpki.NewClusterPKI(clusterpki.Request{ClusterName: "four", Masters: []clusterpki.Master{m1}, ServiceIP: "10.96.0.1"})
		require.NoError(t, err)
		require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kok-cluster-four"}}))
		require.NoError(t, c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kok-cluster-four", Name: "four-ca"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: own.CA.CertPEM, corev1.TLSPrivateKeyKey: own.CA.KeyPEM},
		}))

		res := ensure(t, pki.EnsureClusterPKIParams{Cluster: "four", Request: request(m1), Server: server})
		require.Contains(t, res.Written, "four-ca", "labels are added")
		fp, err := clusterpki.Fingerprint(own.CA.CertPEM)
		require.NoError(t, err)
		require.Equal(t, fp, res.CAFingerprint)
		require.Equal(t, own.CA.CertPEM, secret(t, "four", clusterpki.CA).Data[corev1.TLSCertKey])
	})

	t.Run("a broken CA stops without retry and changes nothing", func(t *testing.T) {
		p := pki.EnsureClusterPKIParams{Cluster: "five", Request: request(m1), Server: server}
		ensure(t, p)
		ca := secret(t, "five", clusterpki.CA)
		ca.Data[corev1.TLSPrivateKeyKey] = secret(t, "five", clusterpki.Admin).Data[corev1.TLSPrivateKeyKey]
		require.NoError(t, c.Update(ctx, ca))
		require.NoError(t, c.Delete(ctx, secret(t, "five", clusterpki.Admin)))
		before := versions(t, "five")

		_, err := aenv.ExecuteActivity(a.EnsureClusterPKI, p)
		require.Equal(t, pki.ErrTypeUnusableKey, appErrorType(t, err))
		require.ErrorContains(t, err, "authority ca: key does not match certificate")
		require.Equal(t, before, versions(t, "five"))
	})

	t.Run("invalid parameters fail without retry and write no Secret", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			p    pki.EnsureClusterPKIParams
			want string
		}{
			{"server not covered", pki.EnsureClusterPKIParams{Cluster: "six", Request: request(m1), Server: "https://other.example"}, "other.example"},
			{"no masters", pki.EnsureClusterPKIParams{Cluster: "six", Request: request(), Server: server}, "no masters"},
			{"request for another cluster", pki.EnsureClusterPKIParams{Cluster: "six", Request: clusterpki.Request{ClusterName: "seven"}, Server: server}, `"seven"`},
			{"cluster name not a label", pki.EnsureClusterPKIParams{Cluster: "Six!", Request: request(m1), Server: server}, `"Six!"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := aenv.ExecuteActivity(a.EnsureClusterPKI, tc.p)
				require.Equal(t, pki.ErrTypeInvalidParams, appErrorType(t, err))
				require.ErrorContains(t, err, tc.want)
			})
		}
		var ns corev1.Namespace
		require.True(t, apierrors.IsNotFound(c.Get(ctx, types.NamespacedName{Name: "kok-cluster-six"}, &ns)), "nothing is created")
	})

	t.Run("delete removes every PKI Secret, nothing else, and is idempotent", func(t *testing.T) {
		ensure(t, pki.EnsureClusterPKIParams{Cluster: "eight", Request: request(m1, m2, m3), Server: server})
		other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "kok-cluster-eight", Name: "unrelated"}}
		require.NoError(t, c.Create(ctx, other))

		del := func() pki.DeleteClusterPKIResult {
			val, err := aenv.ExecuteActivity(a.DeleteClusterPKI, pki.DeleteClusterPKIParams{Cluster: "eight"})
			require.NoError(t, err)
			var res pki.DeleteClusterPKIResult
			require.NoError(t, val.Get(&res))
			return res
		}
		require.Len(t, del().Deleted, 3+1+7+3*2+3, "authorities, SA key, shared leaves, 2 per master, kubeconfigs")
		require.Empty(t, versions(t, "eight"))
		require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(other), other))
		require.Empty(t, del().Deleted)

		_, err := aenv.ExecuteActivity(a.DeleteClusterPKI, pki.DeleteClusterPKIParams{Cluster: "never-existed"})
		require.NoError(t, err)
	})
}
