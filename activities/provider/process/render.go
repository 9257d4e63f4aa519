package process

import (
	"fmt"
	"net"
	"path"
	"sort"
	"strconv"
	"strings"

	"kok.dev/contract/hostapi"
)

// Component names, as in a ClusterPackageVersion.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	MachineOperator       = "machine-operator"
)

// Release is one component of a ClusterPackageVersion: its artifact and default flags.
type Release struct {
	Version     string
	ArtifactURL string
	SHA256      string
	Args        map[string]string
}

// Master is one master host of the cluster.
type Master struct {
	Host string
	IP   string
}

// Ports are the cluster's listening ports on each master. Real hosts use the standard ones; the
// local system gives each cluster its own, so several clusters share one machine.
type Ports struct {
	EtcdClient, EtcdPeer, EtcdMetrics, APIServer, ControllerManager, Scheduler, MachineOperator int
}

// StandardPorts are Kubernetes' and etcd's usual ports; the machine operator's health port
// follows the scheduler's.
var StandardPorts = Ports{EtcdClient: 2379, EtcdPeer: 2380, EtcdMetrics: 2381, APIServer: 6443, ControllerManager: 10257, Scheduler: 10259, MachineOperator: 10260}

// PortsFor derives every port of a cluster from its API server port: 6443 gives the standard
// ports; any other port P gives P+1 (etcd client) to P+6 (machine operator). That is how
// several clusters share one host (the local system) with one field to set per cluster, and
// the ports stay a pure function of the spec, so a retried or resumed workflow computes the
// same ones.
func PortsFor(apiServerPort int) (Ports, error) {
	if apiServerPort == StandardPorts.APIServer || apiServerPort == 0 {
		return StandardPorts, nil
	}
	if apiServerPort < 1 || apiServerPort+6 > 65535 {
		return Ports{}, fmt.Errorf("spec.network.apiServerPort %d: a non-standard port P needs P+1 to P+6 free for etcd and the other components, so it must be at most 65529", apiServerPort)
	}
	p := apiServerPort
	return Ports{EtcdClient: p + 1, EtcdPeer: p + 2, EtcdMetrics: p + 3, APIServer: p, ControllerManager: p + 4, Scheduler: p + 5, MachineOperator: p + 6}, nil
}

// Files is the key material one master needs, PEM-encoded. It reaches the agent as config
// files, so workflow payloads carrying it must be encrypted (the payload codec).
type Files struct {
	CA, CAKey                             string // cluster CA (the controller-manager signs with it)
	EtcdCA                                string
	EtcdServer, EtcdServerKey             string
	EtcdPeer, EtcdPeerKey                 string
	APIServer, APIServerKey               string
	APIServerEtcd, APIServerEtcdKey       string
	KubeletClient, KubeletClientKey       string
	FrontProxyCA                          string
	FrontProxyClient, FrontProxyClientKey string
	ServiceAccountKey, ServiceAccountPub  string
	ControllerManagerKubeconfig           string
	SchedulerKubeconfig                   string
	// OperatorKubeconfig is the machine operator's (administrator) kubeconfig.
	OperatorKubeconfig string
}

// Input is everything needed to render one master's control-plane packages.
type Input struct {
	Cluster     string
	Masters     []Master // every master: etcd's initial cluster
	This        Master   // the master being rendered
	Ports       Ports
	ServiceCIDR string
	PodCIDR     string
	Release     map[string]Release
	// Overrides are the Cluster's per-component extra flags (spec.components[].args).
	Overrides map[string]map[string]string
	Files     Files
	// Operator configures the machine operator; it is rendered when both this and
	// Release[MachineOperator] are set.
	Operator *Operator
}

// Operator is how the machine operator (kok-manager serving one business cluster's Machines)
// reaches Temporal. Its kubeconfig is in Files.OperatorKubeconfig.
type Operator struct {
	TemporalAddress   string
	TemporalNamespace string
	// CodecKeys is the content of the payload codec key file ("" when payloads are not
	// encrypted): workflows it runs carry the same encrypted payloads as the manager's.
	CodecKeys string
	// WebUI is the Temporal Web UI base URL for the links it writes into Machine status.
	WebUI string
}

// protected flags wire the components to each other and to their key material; an override
// that changed one would break the cluster in ways no health check explains, so it is refused.
var protected = map[string][]string{
	Etcd:                  {"name", "data-dir", "listen-client-urls", "advertise-client-urls", "listen-peer-urls", "initial-advertise-peer-urls", "initial-cluster", "cert-file", "key-file", "trusted-ca-file", "peer-cert-file", "peer-key-file", "peer-trusted-ca-file"},
	KubeAPIServer:         {"etcd-servers", "etcd-cafile", "etcd-certfile", "etcd-keyfile", "secure-port", "tls-cert-file", "tls-private-key-file", "client-ca-file", "service-account-key-file", "service-account-signing-key-file"},
	KubeControllerManager: {"kubeconfig", "secure-port", "cluster-signing-cert-file", "cluster-signing-key-file", "service-account-private-key-file"},
	KubeScheduler:         {"kubeconfig", "secure-port"},
	MachineOperator:       {"cluster-name", "kubeconfig", "temporal-address", "temporal-namespace", "codec-key-file", "serve-clusters"},
}

// PackageName is the host package of one component of one cluster: a host may carry masters of
// several clusters (the local system), so the cluster is part of the name.
func PackageName(cluster, component string) string { return "kc-" + cluster + "-" + component }

// Dir is where a cluster's files live on a master, as seen from the host root.
func Dir(cluster string) string { return "/etc/kok/clusters/" + cluster }

// DataDir is where a cluster's etcd keeps its data on a master.
func DataDir(cluster string) string { return "/var/lib/kok/clusters/" + cluster + "/etcd" }

// Render returns the packages of one master, in start order: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler. Flags are the release's defaults, then the provider's
// wiring, then the Cluster's overrides (which may not touch the wiring).
func Render(in Input) ([]hostapi.PackageSpec, error) {
	if err := validate(in); err != nil {
		return nil, err
	}
	for comp, args := range in.Overrides {
		for _, f := range protected[comp] {
			if _, ok := args[f]; ok {
				return nil, fmt.Errorf("spec.components[%s].args: --%s is set by kok (it wires the control plane together) and cannot be overridden", comp, f)
			}
		}
	}
	pki := func(name string) string { return "${KOK_ROOT}" + path.Join(Dir(in.Cluster), "pki", name) }
	file := func(name, content string, mode uint32) hostapi.ConfigFile {
		return hostapi.ConfigFile{Path: path.Join(Dir(in.Cluster), "pki", name), Content: content, Mode: mode}
	}
	// Every component binds to the master's own address, never a wildcard or loopback: masters
	// of different clusters, and simulated masters on one machine, then share ports safely.
	ip := in.This.IP
	var initial []string
	for _, m := range sortedMasters(in.Masters) {
		initial = append(initial, fmt.Sprintf("%s=https://%s", m.Host, net.JoinHostPort(m.IP, strconv.Itoa(in.Ports.EtcdPeer))))
	}
	var etcdServers []string
	for _, m := range sortedMasters(in.Masters) {
		etcdServers = append(etcdServers, "https://"+net.JoinHostPort(m.IP, strconv.Itoa(in.Ports.EtcdClient)))
	}
	clientURL := func(ip string) string { return "https://" + net.JoinHostPort(ip, strconv.Itoa(in.Ports.EtcdClient)) }
	peerURL := "https://" + net.JoinHostPort(in.This.IP, strconv.Itoa(in.Ports.EtcdPeer))

	wiring := map[string]map[string]string{
		Etcd: {
			"name":                        in.This.Host,
			"data-dir":                    "${KOK_ROOT}" + DataDir(in.Cluster),
			"listen-client-urls":          clientURL(ip),
			"listen-metrics-urls":         "http://" + net.JoinHostPort(ip, strconv.Itoa(in.Ports.EtcdMetrics)),
			"advertise-client-urls":       clientURL(in.This.IP),
			"listen-peer-urls":            peerURL,
			"initial-advertise-peer-urls": peerURL,
			"initial-cluster":             strings.Join(initial, ","),
			"initial-cluster-state":       "new",
			"initial-cluster-token":       "kok-" + in.Cluster,
			"client-cert-auth":            "true",
			"cert-file":                   pki("etcd-server.crt"),
			"key-file":                    pki("etcd-server.key"),
			"trusted-ca-file":             pki("etcd-ca.crt"),
			"peer-client-cert-auth":       "true",
			"peer-cert-file":              pki("etcd-peer.crt"),
			"peer-key-file":               pki("etcd-peer.key"),
			"peer-trusted-ca-file":        pki("etcd-ca.crt"),
		},
		KubeAPIServer: {
			"advertise-address":                  in.This.IP,
			"bind-address":                       in.This.IP,
			"secure-port":                        strconv.Itoa(in.Ports.APIServer),
			"etcd-servers":                       strings.Join(etcdServers, ","),
			"etcd-cafile":                        pki("etcd-ca.crt"),
			"etcd-certfile":                      pki("apiserver-etcd-client.crt"),
			"etcd-keyfile":                       pki("apiserver-etcd-client.key"),
			"tls-cert-file":                      pki("apiserver.crt"),
			"tls-private-key-file":               pki("apiserver.key"),
			"client-ca-file":                     pki("ca.crt"),
			"kubelet-client-certificate":         pki("apiserver-kubelet-client.crt"),
			"kubelet-client-key":                 pki("apiserver-kubelet-client.key"),
			"requestheader-client-ca-file":       pki("front-proxy-ca.crt"),
			"proxy-client-cert-file":             pki("front-proxy-client.crt"),
			"proxy-client-key-file":              pki("front-proxy-client.key"),
			"requestheader-allowed-names":        "front-proxy-client",
			"requestheader-username-headers":     "X-Remote-User",
			"requestheader-group-headers":        "X-Remote-Group",
			"requestheader-extra-headers-prefix": "X-Remote-Extra-",
			"service-account-key-file":           pki("sa.pub"),
			"service-account-signing-key-file":   pki("sa.key"),
			"service-account-issuer":             "https://kubernetes.default.svc.cluster.local",
			"service-cluster-ip-range":           in.ServiceCIDR,
			"authorization-mode":                 "Node,RBAC",
		},
		KubeControllerManager: {
			"kubeconfig":                       pki("controller-manager.kubeconfig"),
			"authentication-kubeconfig":        pki("controller-manager.kubeconfig"),
			"authorization-kubeconfig":         pki("controller-manager.kubeconfig"),
			"bind-address":                     ip,
			"secure-port":                      strconv.Itoa(in.Ports.ControllerManager),
			"cluster-signing-cert-file":        pki("ca.crt"),
			"cluster-signing-key-file":         pki("ca.key"),
			"root-ca-file":                     pki("ca.crt"),
			"service-account-private-key-file": pki("sa.key"),
			"service-cluster-ip-range":         in.ServiceCIDR,
			"cluster-cidr":                     in.PodCIDR,
			"use-service-account-credentials":  "true",
			"leader-elect":                     strconv.FormatBool(len(in.Masters) > 1),
		},
		KubeScheduler: {
			"kubeconfig":                pki("scheduler.kubeconfig"),
			"authentication-kubeconfig": pki("scheduler.kubeconfig"),
			"authorization-kubeconfig":  pki("scheduler.kubeconfig"),
			"bind-address":              ip,
			"secure-port":               strconv.Itoa(in.Ports.Scheduler),
			"leader-elect":              strconv.FormatBool(len(in.Masters) > 1),
		},
	}
	// The apiserver's endpoint reconciler refuses a loopback address, which is what simulated
	// masters of the local system have; real masters keep the default (lease) reconciler, which
	// publishes every live apiserver behind the `kubernetes` Service.
	if ip := net.ParseIP(in.This.IP); ip != nil && ip.IsLoopback() {
		wiring[KubeAPIServer]["endpoint-reconciler-type"] = "none"
	}
	f := in.Files
	files := map[string][]hostapi.ConfigFile{
		Etcd: {
			file("etcd-ca.crt", f.EtcdCA, 0o644),
			file("etcd-server.crt", f.EtcdServer, 0o644), file("etcd-server.key", f.EtcdServerKey, 0o600),
			file("etcd-peer.crt", f.EtcdPeer, 0o644), file("etcd-peer.key", f.EtcdPeerKey, 0o600),
		},
		KubeAPIServer: {
			file("ca.crt", f.CA, 0o644), file("etcd-ca.crt", f.EtcdCA, 0o644),
			file("apiserver.crt", f.APIServer, 0o644), file("apiserver.key", f.APIServerKey, 0o600),
			file("apiserver-etcd-client.crt", f.APIServerEtcd, 0o644), file("apiserver-etcd-client.key", f.APIServerEtcdKey, 0o600),
			file("apiserver-kubelet-client.crt", f.KubeletClient, 0o644), file("apiserver-kubelet-client.key", f.KubeletClientKey, 0o600),
			file("front-proxy-ca.crt", f.FrontProxyCA, 0o644),
			file("front-proxy-client.crt", f.FrontProxyClient, 0o644), file("front-proxy-client.key", f.FrontProxyClientKey, 0o600),
			file("sa.pub", f.ServiceAccountPub, 0o644), file("sa.key", f.ServiceAccountKey, 0o600),
		},
		KubeControllerManager: {
			file("ca.crt", f.CA, 0o644), file("ca.key", f.CAKey, 0o600), file("sa.key", f.ServiceAccountKey, 0o600),
			file("controller-manager.kubeconfig", f.ControllerManagerKubeconfig, 0o600),
		},
		KubeScheduler: {
			file("scheduler.kubeconfig", f.SchedulerKubeconfig, 0o600),
		},
	}
	// etcd's /health (plain HTTP on the metrics listener: the client port demands a client
	// certificate the agent does not hold) is healthy only with a quorum, so a member of a new
	// 3-member cluster waits for its peers, which the workflow starts at the same time.
	health := map[string]*hostapi.ProbeSpec{
		Etcd:                  {HTTPURL: "http://" + net.JoinHostPort(ip, strconv.Itoa(in.Ports.EtcdMetrics)) + "/health", ExpectStatus: 200, PeriodSec: 2, TimeoutSec: 2, FailureThreshold: 60},
		KubeAPIServer:         {HTTPURL: "https://" + net.JoinHostPort(ip, strconv.Itoa(in.Ports.APIServer)) + "/livez", ExpectStatus: 200, InsecureSkipVerify: true, PeriodSec: 2, TimeoutSec: 2, FailureThreshold: 60},
		KubeControllerManager: {HTTPURL: "https://" + net.JoinHostPort(ip, strconv.Itoa(in.Ports.ControllerManager)) + "/healthz", ExpectStatus: 200, InsecureSkipVerify: true, PeriodSec: 2, TimeoutSec: 2, FailureThreshold: 60},
		KubeScheduler:         {HTTPURL: "https://" + net.JoinHostPort(ip, strconv.Itoa(in.Ports.Scheduler)) + "/healthz", ExpectStatus: 200, InsecureSkipVerify: true, PeriodSec: 2, TimeoutSec: 2, FailureThreshold: 60},
		MachineOperator:       {HTTPURL: "http://" + net.JoinHostPort(ip, strconv.Itoa(in.Ports.MachineOperator)) + "/healthz", ExpectStatus: 200, PeriodSec: 2, TimeoutSec: 2, FailureThreshold: 60},
	}
	components := []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler}
	if _, ok := in.Release[MachineOperator]; ok && in.Operator != nil {
		components = append(components, MachineOperator)
		o := in.Operator
		wiring[MachineOperator] = map[string]string{
			"cluster-name":              in.Cluster,
			"kubeconfig":                pki("machine-operator.kubeconfig"),
			"temporal-address":          o.TemporalAddress,
			"temporal-namespace":        o.TemporalNamespace,
			"temporal-ui-url":           o.WebUI,
			"health-probe-bind-address": net.JoinHostPort(ip, strconv.Itoa(in.Ports.MachineOperator)),
			"metrics-bind-address":      "0",
			"leader-elect":              strconv.FormatBool(len(in.Masters) > 1),
			// It serves this cluster's Machines; Clusters are the meta cluster's business.
			"serve-clusters": "false",
		}
		files[MachineOperator] = []hostapi.ConfigFile{file("machine-operator.kubeconfig", f.OperatorKubeconfig, 0o600)}
		if o.CodecKeys != "" {
			wiring[MachineOperator]["codec-key-file"] = pki("codec-keys")
			files[MachineOperator] = append(files[MachineOperator], file("codec-keys", o.CodecKeys, 0o600))
		}
	}

	var out []hostapi.PackageSpec
	deps := map[string][]string{}
	for _, comp := range components {
		rel := in.Release[comp]
		args := map[string]string{}
		for k, v := range rel.Args {
			args[k] = v
		}
		for k, v := range wiring[comp] {
			args[k] = v
		}
		for k, v := range in.Overrides[comp] {
			args[k] = v
		}
		name := PackageName(in.Cluster, comp)
		out = append(out, hostapi.PackageSpec{
			Name: name, Version: rel.Version, Type: "Component", Installer: "local",
			ArtifactURL: rel.ArtifactURL, SHA256: rel.SHA256,
			DependsOn:   deps[comp],
			ConfigFiles: files[comp],
			Service: &hostapi.ServiceSpec{
				Name: name, Command: []string{binary(comp)}, Args: flags(args), RestartPolicy: "Always",
			},
			HealthCheck: health[comp],
		})
		switch comp {
		case Etcd:
			deps[KubeAPIServer] = []string{name}
		case KubeAPIServer:
			deps[KubeControllerManager] = []string{name}
			deps[KubeScheduler] = []string{name}
			deps[MachineOperator] = []string{name}
		}
	}
	return out, nil
}

// binary is a component's program inside its artifact (see dev/catalogue/cluster).
func binary(comp string) string {
	if comp == MachineOperator {
		return "bin/kok-manager"
	}
	return "bin/" + comp
}

func validate(in Input) error {
	if in.Cluster == "" {
		return fmt.Errorf("cluster name is empty")
	}
	found := false
	for _, m := range in.Masters {
		if net.ParseIP(m.IP) == nil {
			return fmt.Errorf("master %s: %q is not an IP address", m.Host, m.IP)
		}
		found = found || m == in.This
	}
	if !found {
		return fmt.Errorf("master %s is not one of the cluster's masters", in.This.Host)
	}
	for _, comp := range []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler} {
		r, ok := in.Release[comp]
		if !ok || r.ArtifactURL == "" || r.SHA256 == "" || r.Version == "" {
			return fmt.Errorf("the release has no complete %s (version, artifact and sha256 are required)", comp)
		}
	}
	if _, _, err := net.ParseCIDR(in.ServiceCIDR); err != nil {
		return fmt.Errorf("service CIDR %q: %w", in.ServiceCIDR, err)
	}
	return nil
}

// flags renders a flag map as --name=value, sorted so the same map is the same command line.
func flags(args map[string]string) []string {
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, "--"+k+"="+args[k])
	}
	return out
}

func sortedMasters(ms []Master) []Master {
	out := append([]Master(nil), ms...)
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}
