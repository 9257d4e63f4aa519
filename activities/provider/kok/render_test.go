package kok

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/pki"
	kokv1 "kok.dev/api/v1alpha1"
	clusterpki "kok.dev/internal/pki"
)

func image(name, hex string) string {
	return "registry.example/" + name + "@sha256:" + strings.Repeat(hex, 64)
}

func releaseSpec(withOperator bool) kokv1.ClusterPackageVersionSpec {
	spec := kokv1.ClusterPackageVersionSpec{KubernetesVersion: "v1.37.2"}
	for _, c := range coreComponents {
		v := "v1.37.2"
		if c == kokv1.ComponentEtcd {
			v = "v3.7.0"
		}
		spec.Components = append(spec.Components, kokv1.ControlPlaneComponent{
			Name: c, Version: v, Image: image(string(c), "a"), Args: map[string]string{"v": "2"},
		})
	}
	if withOperator {
		spec.Components = append(spec.Components, kokv1.ControlPlaneComponent{
			Name: kokv1.ComponentMachineOperator, Version: "v0.1.0", Image: image("kok", "b"),
			Args: map[string]string{"leader-elect": "false", "zap-log-level": "info"},
		})
	}
	return spec
}

func input(masters int32) Input {
	return Input{Cluster: "c1", PackageVersion: "v1.37.2", Release: releaseSpec(false), Masters: masters}
}

// names lists "Kind/name" of objs.
func names(objs []client.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, ref(o.GetObjectKind().GroupVersionKind().Kind, o.GetName()))
	}
	return out
}

func find[T client.Object](t *testing.T, objs []client.Object, name string) T {
	t.Helper()
	for _, o := range objs {
		if v, ok := o.(T); ok && o.GetName() == name {
			return v
		}
	}
	var zero T
	t.Fatalf("no %T %s among %v", zero, name, names(objs))
	return zero
}

func flagOf(c corev1.Container, name string) string {
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v
		}
	}
	return "<unset>"
}

func TestRenderControlPlane(t *testing.T) {
	for _, tc := range []struct {
		masters int32
		network kokv1.ClusterNetwork
		port    int32
		members string
		servers string
	}{
		{masters: 1, port: 6443,
			members: "c1-etcd-0=https://c1-etcd-0.c1-etcd:2380",
			servers: "https://c1-etcd-0.c1-etcd:2379"},
		{masters: 3, network: kokv1.ClusterNetwork{APIServerPort: 7443, ServiceCIDR: "10.100.0.0/16", PodCIDR: "10.200.0.0/16"}, port: 7443,
			members: "c1-etcd-0=https://c1-etcd-0.c1-etcd:2380,c1-etcd-1=https://c1-etcd-1.c1-etcd:2380,c1-etcd-2=https://c1-etcd-2.c1-etcd:2380",
			servers: "https://c1-etcd-0.c1-etcd:2379,https://c1-etcd-1.c1-etcd:2379,https://c1-etcd-2.c1-etcd:2379"},
		{masters: 5, port: 6443,
			members: "c1-etcd-0=https://c1-etcd-0.c1-etcd:2380,c1-etcd-1=https://c1-etcd-1.c1-etcd:2380,c1-etcd-2=https://c1-etcd-2.c1-etcd:2380,c1-etcd-3=https://c1-etcd-3.c1-etcd:2380,c1-etcd-4=https://c1-etcd-4.c1-etcd:2380",
			servers: "https://c1-etcd-0.c1-etcd:2379,https://c1-etcd-1.c1-etcd:2379,https://c1-etcd-2.c1-etcd:2379,https://c1-etcd-3.c1-etcd:2379,https://c1-etcd-4.c1-etcd:2379"},
	} {
		t.Run(fmt.Sprintf("%d masters", tc.masters), func(t *testing.T) {
			in := input(tc.masters)
			in.Network = tc.network
			in.Overrides = []kokv1.ClusterComponent{{Name: kokv1.ComponentKubeAPIServer, Args: map[string]string{"v": "4", "audit-log-maxage": "7"}}}
			objs, err := Render(in)
			require.NoError(t, err)
			require.Equal(t, []string{
				"Service/c1-etcd", "StatefulSet/c1-etcd",
				"Service/c1-kube-apiserver", "Deployment/c1-kube-apiserver",
				"Deployment/c1-kube-controller-manager", "Deployment/c1-kube-scheduler",
			}, names(objs), "no machine operator: the release has none")

			for _, o := range objs {
				require.Equal(t, "kok-cluster-c1", o.GetNamespace())
				require.Equal(t, "c1", o.GetLabels()[LabelCluster], o.GetName())
				require.Equal(t, ProviderValue, o.GetLabels()[LabelProvider], "Delete finds objects by this label, %s", o.GetName())
				require.NotEmpty(t, o.GetLabels()[LabelComponent], o.GetName())
				require.Empty(t, o.GetOwnerReferences(), "owner-independent")
			}

			etcdSvc := find[*corev1.Service](t, objs, "c1-etcd")
			require.Equal(t, corev1.ClusterIPNone, etcdSvc.Spec.ClusterIP, "headless")
			require.True(t, etcdSvc.Spec.PublishNotReadyAddresses)

			etcd := find[*appsv1.StatefulSet](t, objs, "c1-etcd")
			require.Equal(t, tc.masters, *etcd.Spec.Replicas)
			require.Equal(t, "c1-etcd", etcd.Spec.ServiceName)
			require.Equal(t, appsv1.ParallelPodManagement, etcd.Spec.PodManagementPolicy)
			require.Equal(t, "v1.37.2", etcd.Spec.Template.Annotations[AnnotationPackageVersion])
			require.Equal(t, "v3.7.0", etcd.Spec.Template.Annotations[AnnotationComponentVersion])
			ec := etcd.Spec.Template.Spec.Containers[0]
			require.Equal(t, image("etcd", "a"), ec.Image)
			require.Equal(t, []string{"etcd"}, ec.Command)
			require.Equal(t, tc.members, flagOf(ec, "initial-cluster"))
			require.Equal(t, "$(POD_NAME)", flagOf(ec, "name"))
			require.Equal(t, "https://$(POD_NAME).c1-etcd:2379", flagOf(ec, "advertise-client-urls"))
			require.Equal(t, "/etc/kubernetes/pki/etcd/$(POD_NAME)/server.crt", flagOf(ec, "cert-file"))
			require.Equal(t, "2", flagOf(ec, "v"), "release defaults apply")
			require.Equal(t, "http://0.0.0.0:2381", flagOf(ec, "listen-metrics-urls"))
			require.Len(t, etcd.Spec.Template.Spec.Volumes[0].Projected.Sources, 2*int(tc.masters), "a server and a peer certificate per member")
			require.NotNil(t, etcd.Spec.Template.Spec.Volumes[1].EmptyDir, "no storage configured: emptyDir")
			require.Empty(t, etcd.Spec.VolumeClaimTemplates)

			api := find[*appsv1.Deployment](t, objs, "c1-kube-apiserver")
			require.Equal(t, tc.masters, *api.Spec.Replicas)
			ac := api.Spec.Template.Spec.Containers[0]
			require.Equal(t, tc.servers, flagOf(ac, "etcd-servers"))
			require.Equal(t, fmt.Sprint(tc.port), flagOf(ac, "secure-port"))
			require.Equal(t, "$(POD_IP)", flagOf(ac, "advertise-address"))
			require.Equal(t, "4", flagOf(ac, "v"), "the Cluster's override beats the release default")
			require.Equal(t, "7", flagOf(ac, "audit-log-maxage"))
			require.Equal(t, withNetworkDefaults(tc.network).ServiceCIDR, flagOf(ac, "service-cluster-ip-range"))
			require.Equal(t, tc.port, ac.ReadinessProbe.HTTPGet.Port.IntVal)
			require.Equal(t, corev1.URISchemeHTTPS, ac.ReadinessProbe.HTTPGet.Scheme)
			apiSvc := find[*corev1.Service](t, objs, "c1-kube-apiserver")
			require.Equal(t, tc.port, apiSvc.Spec.Ports[0].Port)
			require.Equal(t, api.Spec.Selector.MatchLabels, apiSvc.Spec.Selector)

			for _, name := range []string{"c1-kube-controller-manager", "c1-kube-scheduler"} {
				d := find[*appsv1.Deployment](t, objs, name)
				require.Equal(t, tc.masters, *d.Spec.Replicas)
				c := d.Spec.Template.Spec.Containers[0]
				require.Equal(t, "true", flagOf(c, "leader-elect"), name)
				require.Equal(t, fmt.Sprintf("https://c1-kube-apiserver.kok-cluster-c1.svc:%d", tc.port), flagOf(c, "master"), name)
			}
			kcm := find[*appsv1.Deployment](t, objs, "c1-kube-controller-manager").Spec.Template.Spec.Containers[0]
			require.Equal(t, withNetworkDefaults(tc.network).PodCIDR, flagOf(kcm, "cluster-cidr"))
			require.Equal(t, "2", flagOf(kcm, "v"))

			// Key material is mounted from Secrets, never carried in an object.
			for _, o := range objs {
				var spec *corev1.PodSpec
				switch o := o.(type) {
				case *appsv1.Deployment:
					spec = &o.Spec.Template.Spec
				case *appsv1.StatefulSet:
					spec = &o.Spec.Template.Spec
				case *corev1.Secret:
					t.Fatalf("no Secret is rendered without codec keys: %s", o.Name)
				}
				if spec == nil {
					continue
				}
				require.False(t, *spec.AutomountServiceAccountToken, o.GetName())
				for _, v := range spec.Volumes {
					if v.Projected != nil {
						for _, s := range v.Projected.Sources {
							require.NotNil(t, s.Secret, "%s: only Secret projections", o.GetName())
						}
					}
				}
				for _, c := range spec.Containers {
					for _, a := range c.Args {
						require.NotContains(t, a, "PRIVATE KEY")
					}
				}
			}

			again, err := Render(in)
			require.NoError(t, err)
			require.Equal(t, objs, again, "the same input renders the same objects (so applying again changes nothing)")
		})
	}
}

func TestRenderMachineOperatorAndStorage(t *testing.T) {
	in := input(3)
	in.Release = releaseSpec(true)
	in.Operator = &Operator{TemporalAddress: "temporal.kok-system:7233", TemporalNamespace: "kok", WebUI: "https://temporal.example", CodecKeys: []byte("KEYS")}
	in.EtcdStorage = &EtcdStorage{StorageClassName: "fast", Size: "8Gi"}
	in.Overrides = []kokv1.ClusterComponent{{Name: kokv1.ComponentMachineOperator, Args: map[string]string{"zap-log-level": "debug"}}}
	objs, err := Render(in)
	require.NoError(t, err)
	require.Equal(t, []string{
		"Service/c1-etcd", "StatefulSet/c1-etcd",
		"Service/c1-kube-apiserver", "Deployment/c1-kube-apiserver",
		"Deployment/c1-kube-controller-manager", "Deployment/c1-kube-scheduler",
		"Secret/c1-machine-operator-codec", "Deployment/c1-machine-operator",
	}, names(objs))

	op := find[*appsv1.Deployment](t, objs, "c1-machine-operator")
	require.Equal(t, int32(3), *op.Spec.Replicas)
	c := op.Spec.Template.Spec.Containers[0]
	require.Equal(t, image("kok", "b"), c.Image)
	require.Empty(t, c.Command, "the operator image's entrypoint runs")
	require.Equal(t, "c1", flagOf(c, "cluster-name"))
	require.Equal(t, "/etc/kok/kubeconfig", flagOf(c, "kubeconfig"))
	require.Equal(t, "temporal.kok-system:7233", flagOf(c, "temporal-address"))
	require.Equal(t, "/etc/kok/codec-keys", flagOf(c, "codec-key-file"))
	require.Equal(t, "true", flagOf(c, "leader-elect"), "wiring beats the release default")
	require.Equal(t, "debug", flagOf(c, "zap-log-level"), "the override beats the release default")
	require.Equal(t, []string{"c1-admin-kubeconfig", "c1-machine-operator-codec"},
		[]string{op.Spec.Template.Spec.Volumes[0].Projected.Sources[0].Secret.Name, op.Spec.Template.Spec.Volumes[0].Projected.Sources[1].Secret.Name})
	require.Equal(t, []byte("KEYS"), find[*corev1.Secret](t, objs, "c1-machine-operator-codec").Data[codecKeyKey])
	require.NotContains(t, SecretsUsed(objs), "c1-machine-operator-codec", "Render carries that Secret itself")

	etcd := find[*appsv1.StatefulSet](t, objs, "c1-etcd")
	require.Len(t, etcd.Spec.VolumeClaimTemplates, 1)
	claim := etcd.Spec.VolumeClaimTemplates[0]
	require.Equal(t, "fast", *claim.Spec.StorageClassName)
	require.Equal(t, resource.MustParse("8Gi"), claim.Spec.Resources.Requests[corev1.ResourceStorage])
	require.Equal(t, appsv1.DeletePersistentVolumeClaimRetentionPolicyType, etcd.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted)
	for _, v := range etcd.Spec.Template.Spec.Volumes {
		require.NotEqual(t, "data", v.Name, "the claim, not a volume, is etcd's data")
	}

	// An operator that ships only as an artifact (provider process) is left out, not an error.
	in.Release.Components[4].Image = ""
	objs, err = Render(in)
	require.NoError(t, err)
	require.NotContains(t, names(objs), "Deployment/c1-machine-operator")
	require.NotContains(t, names(objs), "Secret/c1-machine-operator-codec")
}

func TestRenderRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Input)
		is     error
		want   string
	}{
		{"component without an image", func(in *Input) { in.Release.Components[1].Image = "" }, ErrInvalidPackageVersion,
			"ClusterPackageVersion v1.37.2: component kube-apiserver has no image; provider kok runs every component as a container image pinned by digest (spec.components[].image)"},
		{"image not pinned", func(in *Input) { in.Release.Components[0].Image = "registry.example/etcd:v3.7.0" }, ErrInvalidPackageVersion,
			`ClusterPackageVersion v1.37.2: component etcd image "registry.example/etcd:v3.7.0" is not pinned by digest (name@sha256:<64 hex>)`},
		{"missing component", func(in *Input) { in.Release.Components = in.Release.Components[:3] }, ErrInvalidPackageVersion,
			"ClusterPackageVersion v1.37.2 has no component kube-scheduler"},
		{"wiring override", func(in *Input) {
			in.Overrides = []kokv1.ClusterComponent{{Name: kokv1.ComponentKubeAPIServer, Args: map[string]string{"etcd-servers": "x"}}}
		}, ErrInvalidSpec, "spec.components[kube-apiserver].args: --etcd-servers is set by kok (it wires the control plane together) and cannot be overridden"},
		{"etcd wiring override", func(in *Input) {
			in.Overrides = []kokv1.ClusterComponent{{Name: kokv1.ComponentEtcd, Args: map[string]string{"initial-cluster": "x"}}}
		}, ErrInvalidSpec, "spec.components[etcd].args: --initial-cluster is set by kok (it wires the control plane together) and cannot be overridden"},
		{"operator's Temporal", func(in *Input) {
			in.Overrides = []kokv1.ClusterComponent{{Name: kokv1.ComponentMachineOperator, Args: map[string]string{"temporal-address": "elsewhere:7233"}}}
		}, ErrInvalidSpec, "spec.components[machine-operator].args: --temporal-address is set by kok (it wires the control plane together) and cannot be overridden"},
		{"two masters", func(in *Input) { in.Masters = 2 }, ErrInvalidSpec, "spec.masters.count is 2: etcd needs 1, 3 or 5 members"},
		{"bad service CIDR", func(in *Input) { in.Network.ServiceCIDR = "10.96.0.0" }, ErrInvalidSpec,
			`spec.network.serviceCIDR "10.96.0.0": netip.ParsePrefix("10.96.0.0"): no '/'`},
		{"override listed twice", func(in *Input) {
			in.Overrides = []kokv1.ClusterComponent{{Name: kokv1.ComponentEtcd}, {Name: kokv1.ComponentEtcd}}
		}, ErrInvalidSpec, "spec.components lists etcd twice"},
		{"name too long", func(in *Input) { in.Cluster = strings.Repeat("c", 48) }, ErrInvalidSpec,
			`cluster name "` + strings.Repeat("c", 48) + `" gives provider kok the object name "` + strings.Repeat("c", 48) + `-etcd", which is too long or does not start with a letter (must be no more than 63 characters)`},
		{"name starts with a digit", func(in *Input) { in.Cluster = "1c" }, ErrInvalidSpec,
			`cluster name "1c" gives provider kok the object name "1c-etcd", which is too long or does not start with a letter (a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?'))`},
		{"no package version", func(in *Input) { in.PackageVersion = "" }, nil, "no package version named"},
		{"bad etcd storage", func(in *Input) { in.EtcdStorage = &EtcdStorage{Size: "lots"} }, nil, `etcd storage size "lots" is not a positive quantity such as 8Gi`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(1)
			tc.mutate(&in)
			_, err := Render(in)
			require.Error(t, err)
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
				require.Equal(t, tc.is.Error()+": "+tc.want, err.Error())
			} else {
				require.EqualError(t, err, tc.want)
				require.False(t, errors.Is(err, ErrInvalidSpec) || errors.Is(err, ErrInvalidPackageVersion))
			}
		})
	}
}

// TestPKIParamsCoverRender checks the contract with activities/pki: a PKI made from PKIParams
// has every Secret the rendered pods mount, and its certificates cover the names the
// components dial.
func TestPKIParamsCoverRender(t *testing.T) {
	network := kokv1.ClusterNetwork{APIServerPort: 7443, ControlPlaneEndpoint: "api.c1.example:443"}
	p, err := PKIParams("c1", "", 3, network)
	require.NoError(t, err)
	require.Equal(t, "kok-cluster-c1", p.Namespace)
	require.Equal(t, "https://c1-kube-apiserver.kok-cluster-c1.svc:7443", p.Server)
	require.Equal(t, "10.96.0.1", p.Request.ServiceIP)
	require.Equal(t, []clusterpki.Master{{Name: "c1-etcd-0.c1-etcd"}, {Name: "c1-etcd-1.c1-etcd"}, {Name: "c1-etcd-2.c1-etcd"}}, p.Request.Masters)
	require.Contains(t, p.Request.ExtraSANs, "api.c1.example")

	b, err := clusterpki.NewClusterPKI(p.Request)
	require.NoError(t, err)
	stored := map[string]bool{
		pki.SecretName("c1", clusterpki.CA): true, pki.SecretName("c1", clusterpki.EtcdCA): true,
		pki.SecretName("c1", clusterpki.FrontProxyCA): true, pki.SecretName("c1", pki.ServiceAccountKey): true,
	}
	for leaf := range b.Leaves {
		stored[pki.SecretName("c1", leaf)] = true
	}
	for _, user := range []string{clusterpki.Admin, clusterpki.ControllerManager, clusterpki.Scheduler} {
		stored[pki.SecretName("c1", pki.KubeconfigPart(user))] = true
		_, err := b.Kubeconfig(user, p.Server) // checks the apiserver certificate covers Server
		require.NoError(t, err)
	}

	in := input(3)
	in.Network = network
	in.Release = releaseSpec(true)
	objs, err := Render(in)
	require.NoError(t, err)
	used := SecretsUsed(objs)
	require.Equal(t, []string{
		"c1-admin-kubeconfig", "c1-apiserver", "c1-apiserver-etcd-client", "c1-apiserver-kubelet-client", "c1-ca",
		"c1-controller-manager-kubeconfig",
		"c1-etcd-peer-c1-etcd-0.c1-etcd", "c1-etcd-peer-c1-etcd-1.c1-etcd", "c1-etcd-peer-c1-etcd-2.c1-etcd",
		"c1-etcd-server-c1-etcd-0.c1-etcd", "c1-etcd-server-c1-etcd-1.c1-etcd", "c1-etcd-server-c1-etcd-2.c1-etcd",
		"c1-front-proxy-client", "c1-sa", "c1-scheduler-kubeconfig",
	}, used, "never an authority's Secret but the CA's, whose key is the controller-manager's signer")
	for _, s := range used {
		require.True(t, stored[s], "pods mount Secret %s, which the PKI does not have", s)
	}
	for i, member := range EtcdMembers("c1", 3) {
		cert := parse(t, b.Leaves[clusterpki.EtcdServer(member)].CertPEM)
		require.NoError(t, cert.VerifyHostname(EtcdPodName("c1", i)+".c1-etcd"), "kube-apiserver dials etcd-servers by this name")
		require.NoError(t, cert.VerifyHostname("localhost"))
	}
	api := parse(t, b.Leaves[clusterpki.APIServer].CertPEM)
	for _, host := range []string{"c1-kube-apiserver", APIServerHost("c1", ""), "api.c1.example", "10.96.0.1"} {
		require.NoError(t, api.VerifyHostname(host))
	}
}

func parse(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return cert
}
