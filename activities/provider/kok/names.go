package kok

import (
	"net"
	"strconv"

	"kok.dev/activities/pki"
	kokv1 "kok.dev/api/v1alpha1"
	clusterpki "kok.dev/internal/pki"
)

// Labels and annotations on every object the provider renders (and, through the pod templates,
// on the ReplicaSets and Pods that the meta cluster's controllers make from them).
const (
	// LabelCluster is the business cluster's name (the same key as the PKI Secrets carry).
	LabelCluster = pki.LabelCluster
	// LabelComponent is the control-plane component (kokv1.ControlPlaneComponentName).
	LabelComponent = "kok.dev/component"
	// LabelProvider marks what this provider rendered; with LabelCluster it is how Ensure
	// prunes and Delete finds the objects, whoever owns them. The value is ProviderValue.
	LabelProvider = "kok.dev/provider"
	ProviderValue = string(kokv1.ProviderKok)
	// AnnotationPackageVersion is the ClusterPackageVersion a workload and its pods were rendered
	// from: status tells versions apart by it. An annotation because the name may exceed the
	// 63 characters of a label value.
	AnnotationPackageVersion = "kok.dev/package-version"
	// AnnotationComponentVersion is the component's own version in that release (v3.7.0 for
	// etcd, say).
	AnnotationComponentVersion = "kok.dev/component-version"
	// FieldOwner is the server-side apply field manager of every object the provider writes.
	FieldOwner = "kok"
)

// Ports inside the pods. Each component has its own pod (and address), so the standard ports
// serve every cluster; only kube-apiserver's follows spec.network.apiServerPort.
const (
	EtcdClientPort            = 2379
	EtcdPeerPort              = 2380
	EtcdMetricsPort           = 2381
	ControllerManagerPort     = 10257
	SchedulerPort             = 10259
	MachineOperatorHealthPort = 8081
)

// Defaults of spec.network, applied when a field is empty (the API server defaults them too, but
// a caller may build the network by hand).
const (
	DefaultServiceCIDR   = "10.96.0.0/12"
	DefaultPodCIDR       = "10.244.0.0/16"
	DefaultAPIServerPort = 6443
)

// ObjectName is the name of a component's workload (and Service) of a cluster. The cluster name
// is part of it, like the PKI Secrets', so several clusters may share a namespace.
func ObjectName(cluster string, c kokv1.ControlPlaneComponentName) string {
	return cluster + "-" + string(c)
}

// EtcdPodName is the pod of etcd member i (0-based): the StatefulSet's pod.
func EtcdPodName(cluster string, i int) string {
	return ObjectName(cluster, kokv1.ComponentEtcd) + "-" + strconv.Itoa(i)
}

// EtcdMembers are the names of a cluster's etcd members as their peers and kube-apiserver reach
// them — <pod>.<headless Service>, resolved through the pod's DNS search path within the
// namespace — and so the master names its PKI must carry: each member's certificates cover
// exactly that name.
func EtcdMembers(cluster string, masters int32) []string {
	out := make([]string, 0, masters)
	for i := range int(masters) {
		out = append(out, EtcdPodName(cluster, i)+"."+ObjectName(cluster, kokv1.ComponentEtcd))
	}
	return out
}

// APIServerHost is the DNS name of the cluster's kube-apiserver Service in the meta cluster.
func APIServerHost(cluster, namespace string) string {
	return ObjectName(cluster, kokv1.ComponentKubeAPIServer) + "." + namespaceOr(cluster, namespace) + ".svc"
}

// APIServerURL is the https URL of the cluster's kube-apiserver from inside the meta cluster.
// kube-controller-manager and kube-scheduler use it whatever their kubeconfig says (--master).
func APIServerURL(cluster, namespace string, port int32) string {
	if port == 0 {
		port = DefaultAPIServerPort
	}
	return "https://" + net.JoinHostPort(APIServerHost(cluster, namespace), strconv.Itoa(int(port)))
}

// PKIParams is what the Cluster workflow gives pki.EnsureClusterPKI for a kok-provider cluster:
// one master per etcd member, named as in EtcdMembers; an apiserver certificate that also covers
// the Service's names (and the control-plane endpoint, when set); kubeconfigs that point at
// APIServerURL, which the machine operator, running beside the control plane, can reach.
func PKIParams(cluster, namespace string, masters int32, network kokv1.ClusterNetwork) (pki.EnsureClusterPKIParams, error) {
	network = withNetworkDefaults(network)
	serviceIP, err := clusterpki.ServiceIP(network.ServiceCIDR)
	if err != nil {
		return pki.EnsureClusterPKIParams{}, err
	}
	ns := namespaceOr(cluster, namespace)
	svc := ObjectName(cluster, kokv1.ComponentKubeAPIServer)
	req := clusterpki.Request{
		ClusterName: cluster,
		ServiceIP:   serviceIP,
		ExtraSANs:   []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"},
	}
	for _, m := range EtcdMembers(cluster, masters) {
		req.Masters = append(req.Masters, clusterpki.Master{Name: m})
	}
	if ep := network.ControlPlaneEndpoint; ep != "" {
		host := ep
		if h, _, err := net.SplitHostPort(ep); err == nil {
			host = h
		}
		req.ExtraSANs = append(req.ExtraSANs, host)
	}
	return pki.EnsureClusterPKIParams{
		Cluster:   cluster,
		Namespace: ns,
		Request:   req,
		Server:    APIServerURL(cluster, ns, network.APIServerPort),
	}, nil
}

func namespaceOr(cluster, namespace string) string {
	if namespace == "" {
		return pki.Namespace(cluster)
	}
	return namespace
}

func withNetworkDefaults(n kokv1.ClusterNetwork) kokv1.ClusterNetwork {
	if n.ServiceCIDR == "" {
		n.ServiceCIDR = DefaultServiceCIDR
	}
	if n.PodCIDR == "" {
		n.PodCIDR = DefaultPodCIDR
	}
	if n.APIServerPort == 0 {
		n.APIServerPort = DefaultAPIServerPort
	}
	return n
}
