package kok

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/pki"
	kokv1 "kok.dev/api/v1alpha1"
	clusterpki "kok.dev/internal/pki"
)

// Render fails only on input that no retry fixes; these tell whose input it was.
var (
	// ErrInvalidPackageVersion: the ClusterPackageVersion cannot run on this provider (a
	// component without an image, say).
	ErrInvalidPackageVersion = errors.New("the package version cannot run on provider kok")
	// ErrInvalidSpec: the Cluster's spec (or name) cannot be rendered, such as an override of a
	// flag the provider sets.
	ErrInvalidSpec = errors.New("the cluster spec cannot run on provider kok")
)

// Input is everything Render needs: the release, the Cluster's spec and the provider's own
// configuration. It holds no key material, except Operator.CodecKeys, which comes from the
// worker's configuration and never from workflow history.
type Input struct {
	// Cluster is the business cluster's name; Namespace the meta-cluster namespace its control
	// plane runs in (empty: pki.Namespace(Cluster), where its PKI Secrets are).
	Cluster   string
	Namespace string
	// PackageVersion names the ClusterPackageVersion whose spec Release is.
	PackageVersion string
	Release        kokv1.ClusterPackageVersionSpec
	// Masters is spec.masters.count: etcd members and replicas of every other component.
	Masters int32
	// Network is spec.network; empty fields take the API's defaults.
	Network kokv1.ClusterNetwork
	// Overrides are spec.components: flags over the release's defaults, never over wiring.
	Overrides []kokv1.ClusterComponent
	// Operator configures the machine operator; nil leaves kok-manager's defaults.
	Operator *Operator
	// EtcdStorage gives each etcd member a PersistentVolumeClaim; nil gives it an emptyDir,
	// whose data dies with the pod (tests and the simulated local system only).
	EtcdStorage *EtcdStorage
}

// Operator is how the machine operator (kok-manager serving one business cluster's Machines)
// reaches Temporal. Its kubeconfig is the cluster's admin kubeconfig Secret.
type Operator struct {
	TemporalAddress   string
	TemporalNamespace string
	// WebUI is the Temporal Web UI base URL for the links it writes into Machine status.
	WebUI string
	// CodecKeys is the content of the payload codec key file (nil when payloads are not
	// encrypted). Render puts it into a Secret of its own, which the operator mounts.
	CodecKeys []byte
}

// EtcdStorage is the volume claim of each etcd member.
type EtcdStorage struct {
	// StorageClassName is the claims' class; empty takes the meta cluster's default class.
	StorageClassName string
	// Size is the claim's size, a quantity such as 8Gi.
	Size string
}

// Paths inside the pods.
const (
	pkiDir      = "/etc/kubernetes/pki"
	etcdDataDir = "/var/lib/etcd"
	operatorDir = "/etc/kok"
	// codecKeySecretSuffix names the Secret Render writes for Operator.CodecKeys.
	codecKeySecretSuffix = "-machine-operator-codec"
	codecKeyKey          = "codec-keys"
)

// coreComponents run in every cluster, in the order they are applied.
var coreComponents = []kokv1.ControlPlaneComponentName{
	kokv1.ComponentEtcd,
	kokv1.ComponentKubeAPIServer,
	kokv1.ComponentKubeControllerManager,
	kokv1.ComponentKubeScheduler,
}

// alwaysProtected are flags refused as overrides even when the provider leaves them unset: they
// point the operator at a Temporal and key material only the worker's configuration may choose.
var alwaysProtected = map[kokv1.ControlPlaneComponentName][]string{
	kokv1.ComponentMachineOperator: {"temporal-address", "temporal-namespace", "codec-key-file"},
}

// digestRE is the API's pattern of a component image: pinned by digest, so a version stays
// immutable.
var digestRE = regexp.MustCompile(`^\S+@sha256:[a-f0-9]{64}$`)

// Render returns the control plane's objects in the order they are applied: etcd's Service and
// StatefulSet, kube-apiserver's Service and Deployment, the kube-controller-manager and
// kube-scheduler Deployments, then the machine operator's Deployment when the release has an
// image for it (and its codec Secret). Flags are the release's defaults, then the provider's
// wiring, then the Cluster's overrides, which may not touch the wiring.
func Render(in Input) ([]client.Object, error) {
	r, err := newRenderer(in)
	if err != nil {
		return nil, err
	}
	wiring := r.wiring()
	for _, o := range in.Overrides {
		for _, f := range slices.Concat(slices.Sorted(maps.Keys(wiring[o.Name])), alwaysProtected[o.Name]) {
			if _, ok := o.Args[f]; ok {
				return nil, fmt.Errorf("%w: spec.components[%s].args: --%s is set by kok (it wires the control plane together) and cannot be overridden", ErrInvalidSpec, o.Name, f)
			}
		}
	}
	args := func(c kokv1.ControlPlaneComponentName) []string {
		a := map[string]string{}
		maps.Copy(a, r.release[c].Args)
		maps.Copy(a, wiring[c])
		maps.Copy(a, r.overrides[c])
		return flags(a)
	}

	out := []client.Object{
		r.etcdService(),
		r.etcdStatefulSet(args(kokv1.ComponentEtcd)),
		r.apiServerService(),
		r.apiServerDeployment(args(kokv1.ComponentKubeAPIServer)),
		r.controllerManagerDeployment(args(kokv1.ComponentKubeControllerManager)),
		r.schedulerDeployment(args(kokv1.ComponentKubeScheduler)),
	}
	if r.hasOperator() {
		if s := r.codecSecret(); s != nil {
			out = append(out, s)
		}
		out = append(out, r.operatorDeployment(args(kokv1.ComponentMachineOperator)))
	}
	return out, nil
}

type renderer struct {
	in        Input
	ns        string
	net       kokv1.ClusterNetwork
	release   map[kokv1.ControlPlaneComponentName]kokv1.ControlPlaneComponent
	overrides map[kokv1.ControlPlaneComponentName]map[string]string
	etcdSize  resource.Quantity
}

func newRenderer(in Input) (*renderer, error) {
	r := &renderer{
		in:        in,
		ns:        namespaceOr(in.Cluster, in.Namespace),
		net:       withNetworkDefaults(in.Network),
		release:   map[kokv1.ControlPlaneComponentName]kokv1.ControlPlaneComponent{},
		overrides: map[kokv1.ControlPlaneComponentName]map[string]string{},
	}
	if err := r.validateNames(); err != nil {
		return nil, err
	}
	if in.PackageVersion == "" {
		return nil, errors.New("no package version named")
	}
	switch in.Masters {
	case 1, 3, 5:
	default:
		return nil, fmt.Errorf("%w: spec.masters.count is %d: etcd needs 1, 3 or 5 members", ErrInvalidSpec, in.Masters)
	}
	for _, f := range [][2]string{{"serviceCIDR", r.net.ServiceCIDR}, {"podCIDR", r.net.PodCIDR}} {
		if _, err := netip.ParsePrefix(f[1]); err != nil {
			return nil, fmt.Errorf("%w: spec.network.%s %q: %w", ErrInvalidSpec, f[0], f[1], err)
		}
	}
	if p := r.net.APIServerPort; p < 1 || p > 65535 {
		return nil, fmt.Errorf("%w: spec.network.apiServerPort %d is not a port", ErrInvalidSpec, p)
	}

	for _, c := range in.Release.Components {
		if _, dup := r.release[c.Name]; dup {
			return nil, fmt.Errorf("%w: ClusterPackageVersion %s lists component %s twice", ErrInvalidPackageVersion, in.PackageVersion, c.Name)
		}
		r.release[c.Name] = c
	}
	for _, name := range slices.Concat(coreComponents, []kokv1.ControlPlaneComponentName{kokv1.ComponentMachineOperator}) {
		c, ok := r.release[name]
		switch {
		case !ok && name == kokv1.ComponentMachineOperator:
		case !ok:
			return nil, fmt.Errorf("%w: ClusterPackageVersion %s has no component %s", ErrInvalidPackageVersion, in.PackageVersion, name)
		case c.Image == "" && name == kokv1.ComponentMachineOperator:
			// Optional: a release whose operator ships only as an artifact runs without one here.
		case c.Image == "":
			return nil, fmt.Errorf("%w: ClusterPackageVersion %s: component %s has no image; provider kok runs every component as a container image pinned by digest (spec.components[].image)", ErrInvalidPackageVersion, in.PackageVersion, name)
		case !digestRE.MatchString(c.Image):
			return nil, fmt.Errorf("%w: ClusterPackageVersion %s: component %s image %q is not pinned by digest (name@sha256:<64 hex>)", ErrInvalidPackageVersion, in.PackageVersion, name, c.Image)
		}
	}

	for _, o := range in.Overrides {
		if _, dup := r.overrides[o.Name]; dup {
			return nil, fmt.Errorf("%w: spec.components lists %s twice", ErrInvalidSpec, o.Name)
		}
		r.overrides[o.Name] = o.Args
	}

	if s := in.EtcdStorage; s != nil {
		q, err := resource.ParseQuantity(s.Size)
		if err != nil || q.Sign() <= 0 {
			return nil, fmt.Errorf("etcd storage size %q is not a positive quantity such as 8Gi", s.Size)
		}
		r.etcdSize = q
	}
	return r, nil
}

// validateNames checks that the cluster's name makes valid object names: Services are DNS
// labels that start with a letter, and a StatefulSet's name is part of its pods' revision
// label (name-<10-character hash>), which has 63 characters at most.
func (r *renderer) validateNames() error {
	c := r.in.Cluster
	if c == "" {
		return errors.New("cluster name is empty")
	}
	if errs := validation.IsValidLabelValue(c); len(errs) > 0 {
		return fmt.Errorf("%w: cluster name %q cannot be a label value: %s", ErrInvalidSpec, c, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Label(r.ns); len(errs) > 0 {
		return fmt.Errorf("namespace %q: %s", r.ns, strings.Join(errs, "; "))
	}
	checks := map[string][]string{
		ObjectName(c, kokv1.ComponentEtcd):          validation.IsDNS1035Label(ObjectName(c, kokv1.ComponentEtcd) + "-0123456789"),
		ObjectName(c, kokv1.ComponentKubeAPIServer): validation.IsDNS1035Label(ObjectName(c, kokv1.ComponentKubeAPIServer)),
	}
	for _, name := range slices.Sorted(maps.Keys(checks)) {
		if errs := checks[name]; len(errs) > 0 {
			return fmt.Errorf("%w: cluster name %q gives provider kok the object name %q, which is too long or does not start with a letter (%s)", ErrInvalidSpec, c, name, strings.Join(errs, "; "))
		}
	}
	return nil
}

func (r *renderer) hasOperator() bool {
	c, ok := r.release[kokv1.ComponentMachineOperator]
	return ok && c.Image != ""
}

// wiring are the flags that connect the components to each other and to their key material.
func (r *renderer) wiring() map[kokv1.ControlPlaneComponentName]map[string]string {
	c := r.in.Cluster
	etcdSvc := ObjectName(c, kokv1.ComponentEtcd)
	var initial, servers []string
	for i, member := range EtcdMembers(c, r.in.Masters) {
		initial = append(initial, fmt.Sprintf("%s=https://%s:%d", EtcdPodName(c, i), member, EtcdPeerPort))
		servers = append(servers, fmt.Sprintf("https://%s:%d", member, EtcdClientPort))
	}
	self := "$(POD_NAME)." + etcdSvc // the kubelet expands $(VAR) from the container's env
	etcdCert := func(file string) string { return pkiDir + "/etcd/$(POD_NAME)/" + file }
	p := func(file string) string { return pkiDir + "/" + file }
	master := APIServerURL(c, r.ns, r.net.APIServerPort)

	w := map[kokv1.ControlPlaneComponentName]map[string]string{
		kokv1.ComponentEtcd: {
			"name":                        "$(POD_NAME)",
			"data-dir":                    etcdDataDir,
			"listen-client-urls":          fmt.Sprintf("https://0.0.0.0:%d", EtcdClientPort),
			"advertise-client-urls":       fmt.Sprintf("https://%s:%d", self, EtcdClientPort),
			"listen-peer-urls":            fmt.Sprintf("https://0.0.0.0:%d", EtcdPeerPort),
			"initial-advertise-peer-urls": fmt.Sprintf("https://%s:%d", self, EtcdPeerPort),
			// Plain-HTTP /health for the kubelet's probe, which holds no client certificate.
			"listen-metrics-urls":   fmt.Sprintf("http://0.0.0.0:%d", EtcdMetricsPort),
			"initial-cluster":       strings.Join(initial, ","),
			"initial-cluster-state": "new",
			"initial-cluster-token": "kok-" + c,
			"client-cert-auth":      "true",
			"cert-file":             etcdCert("server.crt"),
			"key-file":              etcdCert("server.key"),
			"trusted-ca-file":       p("etcd/ca.crt"),
			"peer-client-cert-auth": "true",
			"peer-cert-file":        etcdCert("peer.crt"),
			"peer-key-file":         etcdCert("peer.key"),
			"peer-trusted-ca-file":  p("etcd/ca.crt"),
		},
		kokv1.ComponentKubeAPIServer: {
			"advertise-address":                  "$(POD_IP)",
			"secure-port":                        strconv.Itoa(int(r.net.APIServerPort)),
			"etcd-servers":                       strings.Join(servers, ","),
			"etcd-cafile":                        p("etcd/ca.crt"),
			"etcd-certfile":                      p("apiserver-etcd-client.crt"),
			"etcd-keyfile":                       p("apiserver-etcd-client.key"),
			"tls-cert-file":                      p("apiserver.crt"),
			"tls-private-key-file":               p("apiserver.key"),
			"client-ca-file":                     p("ca.crt"),
			"kubelet-client-certificate":         p("apiserver-kubelet-client.crt"),
			"kubelet-client-key":                 p("apiserver-kubelet-client.key"),
			"requestheader-client-ca-file":       p("front-proxy-ca.crt"),
			"proxy-client-cert-file":             p("front-proxy-client.crt"),
			"proxy-client-key-file":              p("front-proxy-client.key"),
			"requestheader-allowed-names":        "front-proxy-client",
			"requestheader-username-headers":     "X-Remote-User",
			"requestheader-group-headers":        "X-Remote-Group",
			"requestheader-extra-headers-prefix": "X-Remote-Extra-",
			"service-account-key-file":           p("sa.pub"),
			"service-account-signing-key-file":   p("sa.key"),
			"service-account-issuer":             "https://kubernetes.default.svc.cluster.local",
			"service-cluster-ip-range":           r.net.ServiceCIDR,
		},
		kokv1.ComponentKubeControllerManager: {
			"master":                           master,
			"kubeconfig":                       p("controller-manager.kubeconfig"),
			"authentication-kubeconfig":        p("controller-manager.kubeconfig"),
			"authorization-kubeconfig":         p("controller-manager.kubeconfig"),
			"secure-port":                      strconv.Itoa(ControllerManagerPort),
			"client-ca-file":                   p("ca.crt"),
			"requestheader-client-ca-file":     p("front-proxy-ca.crt"),
			"root-ca-file":                     p("ca.crt"),
			"cluster-signing-cert-file":        p("ca.crt"),
			"cluster-signing-key-file":         p("ca.key"),
			"service-account-private-key-file": p("sa.key"),
			"cluster-name":                     c,
			"service-cluster-ip-range":         r.net.ServiceCIDR,
			"allocate-node-cidrs":              "true",
			"cluster-cidr":                     r.net.PodCIDR,
			// Always: a rolling update runs old and new replicas side by side.
			"leader-elect": "true",
		},
		kokv1.ComponentKubeScheduler: {
			"master":                    master,
			"kubeconfig":                p("scheduler.kubeconfig"),
			"authentication-kubeconfig": p("scheduler.kubeconfig"),
			"authorization-kubeconfig":  p("scheduler.kubeconfig"),
			"secure-port":               strconv.Itoa(SchedulerPort),
			"leader-elect":              "true",
		},
	}
	if r.hasOperator() {
		op := map[string]string{
			"cluster-name":              c,
			"kubeconfig":                operatorDir + "/kubeconfig",
			"health-probe-bind-address": fmt.Sprintf(":%d", MachineOperatorHealthPort),
			"leader-elect":              "true",
			// It serves this cluster's Machines; Clusters are the meta cluster's business.
			"serve-clusters": "false",
		}
		if o := r.in.Operator; o != nil {
			for flag, v := range map[string]string{"temporal-address": o.TemporalAddress, "temporal-namespace": o.TemporalNamespace, "temporal-ui-url": o.WebUI} {
				if v != "" {
					op[flag] = v
				}
			}
			if len(o.CodecKeys) > 0 {
				op["codec-key-file"] = operatorDir + "/" + codecKeyKey
			}
		}
		w[kokv1.ComponentMachineOperator] = op
	}
	return w
}

// meta is the identity every object of component c carries; selector is the part of it that
// selects its pods (immutable once a workload exists).
func (r *renderer) meta(kind, apiVersion string, c kokv1.ControlPlaneComponentName) (metav1.TypeMeta, metav1.ObjectMeta) {
	return metav1.TypeMeta{Kind: kind, APIVersion: apiVersion}, metav1.ObjectMeta{
		Name:      ObjectName(r.in.Cluster, c),
		Namespace: r.ns,
		Labels:    r.selector(c),
	}
}

func (r *renderer) selector(c kokv1.ControlPlaneComponentName) map[string]string {
	return map[string]string{LabelCluster: r.in.Cluster, LabelComponent: string(c), LabelProvider: ProviderValue}
}

func (r *renderer) versionAnnotations(c kokv1.ControlPlaneComponentName) map[string]string {
	return map[string]string{AnnotationPackageVersion: r.in.PackageVersion, AnnotationComponentVersion: r.release[c].Version}
}

// podTemplate is a component's pod: one container, its PKI volume, spread over nodes.
func (r *renderer) podTemplate(c kokv1.ControlPlaneComponentName, ctr corev1.Container, volumes ...corev1.Volume) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: r.selector(c), Annotations: r.versionAnnotations(c)},
		Spec: corev1.PodSpec{
			// The components talk to their own cluster, never to the meta cluster's API.
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			Containers:                   []corev1.Container{ctr},
			Volumes:                      volumes,
			Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
					Weight: 100,
					PodAffinityTerm: corev1.PodAffinityTerm{
						LabelSelector: &metav1.LabelSelector{MatchLabels: r.selector(c)},
						TopologyKey:   corev1.LabelHostname,
					},
				}},
			}},
		},
	}
}

func (r *renderer) container(c kokv1.ControlPlaneComponentName, args []string, probe *corev1.Probe, ports ...corev1.ContainerPort) corev1.Container {
	ctr := corev1.Container{
		Name:           string(c),
		Image:          r.release[c].Image,
		Args:           args,
		Ports:          ports,
		ReadinessProbe: probe,
		VolumeMounts:   []corev1.VolumeMount{{Name: "pki", MountPath: pkiDir, ReadOnly: true}},
	}
	if c != kokv1.ComponentMachineOperator {
		// Kubernetes' and etcd's images carry their program on PATH, as kubeadm runs them; the
		// machine operator's image has it as its entrypoint.
		ctr.Command = []string{string(c)}
	}
	return ctr
}

func (r *renderer) etcdService() *corev1.Service {
	tm, om := r.meta("Service", "v1", kokv1.ComponentEtcd)
	return &corev1.Service{TypeMeta: tm, ObjectMeta: om, Spec: corev1.ServiceSpec{
		ClusterIP: corev1.ClusterIPNone,
		// Members must find each other before any is ready: none is until a quorum is up.
		PublishNotReadyAddresses: true,
		Selector:                 r.selector(kokv1.ComponentEtcd),
		Ports: []corev1.ServicePort{
			{Name: "client", Port: EtcdClientPort, TargetPort: intstr.FromInt32(EtcdClientPort)},
			{Name: "peer", Port: EtcdPeerPort, TargetPort: intstr.FromInt32(EtcdPeerPort)},
		},
	}}
}

func (r *renderer) etcdStatefulSet(args []string) *appsv1.StatefulSet {
	c := kokv1.ComponentEtcd
	ctr := r.container(c, args, httpProbe(corev1.URISchemeHTTP, "/health", EtcdMetricsPort),
		corev1.ContainerPort{Name: "client", ContainerPort: EtcdClientPort},
		corev1.ContainerPort{Name: "peer", ContainerPort: EtcdPeerPort},
		corev1.ContainerPort{Name: "metrics", ContainerPort: EtcdMetricsPort},
	)
	ctr.Env = []corev1.EnvVar{fieldEnv("POD_NAME", "metadata.name")}
	ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: etcdDataDir})

	// Every member mounts every member's certificates and picks its own by pod name: a
	// StatefulSet has one pod template. The members are peers under one CA, so none learns
	// more than it could do with its own.
	var sources []corev1.VolumeProjection
	for i, member := range EtcdMembers(r.in.Cluster, r.in.Masters) {
		pod := EtcdPodName(r.in.Cluster, i)
		server := secretItems(pki.SecretName(r.in.Cluster, clusterpki.EtcdServer(member)),
			corev1.TLSCertKey, "etcd/"+pod+"/server.crt", corev1.TLSPrivateKeyKey, "etcd/"+pod+"/server.key")
		if i == 0 {
			server.Secret.Items = append(server.Secret.Items, corev1.KeyToPath{Key: pki.KeyCACert, Path: "etcd/ca.crt"})
		}
		sources = append(sources, server, secretItems(pki.SecretName(r.in.Cluster, clusterpki.EtcdPeer(member)),
			corev1.TLSCertKey, "etcd/"+pod+"/peer.crt", corev1.TLSPrivateKeyKey, "etcd/"+pod+"/peer.key"))
	}
	volumes := []corev1.Volume{projected("pki", 0o400, sources...)}

	tm, om := r.meta("StatefulSet", "apps/v1", c)
	om.Annotations = r.versionAnnotations(c)
	sts := &appsv1.StatefulSet{TypeMeta: tm, ObjectMeta: om, Spec: appsv1.StatefulSetSpec{
		Replicas:    ptr.To(r.in.Masters),
		ServiceName: ObjectName(r.in.Cluster, c),
		Selector:    &metav1.LabelSelector{MatchLabels: r.selector(c)},
		// All members start together (a new member waits for its peers before it is ready);
		// updates still replace one member at a time.
		PodManagementPolicy: appsv1.ParallelPodManagement,
		UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
	}}
	if s := r.in.EtcdStorage; s != nil {
		claim := corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: r.selector(c)},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: r.etcdSize}},
			},
		}
		if s.StorageClassName != "" {
			claim.Spec.StorageClassName = ptr.To(s.StorageClassName)
		}
		sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{claim}
		sts.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
			WhenDeleted: appsv1.DeletePersistentVolumeClaimRetentionPolicyType,
			WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		}
	} else {
		volumes = append(volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	}
	sts.Spec.Template = r.podTemplate(c, ctr, volumes...)
	return sts
}

func (r *renderer) apiServerService() *corev1.Service {
	tm, om := r.meta("Service", "v1", kokv1.ComponentKubeAPIServer)
	port := r.net.APIServerPort
	return &corev1.Service{TypeMeta: tm, ObjectMeta: om, Spec: corev1.ServiceSpec{
		Selector: r.selector(kokv1.ComponentKubeAPIServer),
		Ports:    []corev1.ServicePort{{Name: "https", Port: port, TargetPort: intstr.FromInt32(port)}},
	}}
}

func (r *renderer) apiServerDeployment(args []string) *appsv1.Deployment {
	c := kokv1.ComponentKubeAPIServer
	cl := r.in.Cluster
	port := r.net.APIServerPort
	ctr := r.container(c, args, httpProbe(corev1.URISchemeHTTPS, "/readyz", port),
		corev1.ContainerPort{Name: "https", ContainerPort: port})
	ctr.Env = []corev1.EnvVar{fieldEnv("POD_IP", "status.podIP")}
	vol := projected("pki", 0o400,
		secretItems(pki.SecretName(cl, clusterpki.APIServer),
			corev1.TLSCertKey, "apiserver.crt", corev1.TLSPrivateKeyKey, "apiserver.key", pki.KeyCACert, "ca.crt"),
		secretItems(pki.SecretName(cl, clusterpki.APIServerEtcdClient),
			corev1.TLSCertKey, "apiserver-etcd-client.crt", corev1.TLSPrivateKeyKey, "apiserver-etcd-client.key", pki.KeyCACert, "etcd/ca.crt"),
		secretItems(pki.SecretName(cl, clusterpki.APIServerKubeletClient),
			corev1.TLSCertKey, "apiserver-kubelet-client.crt", corev1.TLSPrivateKeyKey, "apiserver-kubelet-client.key"),
		secretItems(pki.SecretName(cl, clusterpki.FrontProxyClient),
			corev1.TLSCertKey, "front-proxy-client.crt", corev1.TLSPrivateKeyKey, "front-proxy-client.key", pki.KeyCACert, "front-proxy-ca.crt"),
		secretItems(pki.SecretName(cl, pki.ServiceAccountKey),
			pki.KeyServiceAccountPublic, "sa.pub", pki.KeyServiceAccountPrivate, "sa.key"),
	)
	return r.deployment(c, r.podTemplate(c, ctr, vol))
}

func (r *renderer) controllerManagerDeployment(args []string) *appsv1.Deployment {
	c := kokv1.ComponentKubeControllerManager
	cl := r.in.Cluster
	ctr := r.container(c, args, httpProbe(corev1.URISchemeHTTPS, "/healthz", ControllerManagerPort),
		corev1.ContainerPort{Name: "https", ContainerPort: ControllerManagerPort})
	vol := projected("pki", 0o400,
		secretItems(pki.SecretName(cl, pki.KubeconfigPart(clusterpki.ControllerManager)), pki.KeyKubeconfig, "controller-manager.kubeconfig"),
		// The CA's key signs kubelet certificates (the CSR signer).
		secretItems(pki.SecretName(cl, clusterpki.CA), corev1.TLSCertKey, "ca.crt", corev1.TLSPrivateKeyKey, "ca.key"),
		// Only the front-proxy CA certificate, not the client key beside it.
		secretItems(pki.SecretName(cl, clusterpki.FrontProxyClient), pki.KeyCACert, "front-proxy-ca.crt"),
		secretItems(pki.SecretName(cl, pki.ServiceAccountKey), pki.KeyServiceAccountPrivate, "sa.key"),
	)
	return r.deployment(c, r.podTemplate(c, ctr, vol))
}

func (r *renderer) schedulerDeployment(args []string) *appsv1.Deployment {
	c := kokv1.ComponentKubeScheduler
	ctr := r.container(c, args, httpProbe(corev1.URISchemeHTTPS, "/healthz", SchedulerPort),
		corev1.ContainerPort{Name: "https", ContainerPort: SchedulerPort})
	vol := projected("pki", 0o400,
		secretItems(pki.SecretName(r.in.Cluster, pki.KubeconfigPart(clusterpki.Scheduler)), pki.KeyKubeconfig, "scheduler.kubeconfig"))
	return r.deployment(c, r.podTemplate(c, ctr, vol))
}

func (r *renderer) codecSecretName() string { return r.in.Cluster + codecKeySecretSuffix }

func (r *renderer) codecSecret() *corev1.Secret {
	if r.in.Operator == nil || len(r.in.Operator.CodecKeys) == 0 {
		return nil
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: r.codecSecretName(), Namespace: r.ns, Labels: r.selector(kokv1.ComponentMachineOperator),
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{codecKeyKey: r.in.Operator.CodecKeys},
	}
}

func (r *renderer) operatorDeployment(args []string) *appsv1.Deployment {
	c := kokv1.ComponentMachineOperator
	ctr := r.container(c, args, httpProbe(corev1.URISchemeHTTP, "/readyz", MachineOperatorHealthPort),
		corev1.ContainerPort{Name: "health", ContainerPort: MachineOperatorHealthPort})
	ctr.VolumeMounts = []corev1.VolumeMount{{Name: "pki", MountPath: operatorDir, ReadOnly: true}}
	sources := []corev1.VolumeProjection{
		secretItems(pki.SecretName(r.in.Cluster, pki.KubeconfigPart(clusterpki.Admin)), pki.KeyKubeconfig, "kubeconfig"),
	}
	if r.codecSecret() != nil {
		sources = append(sources, secretItems(r.codecSecretName(), codecKeyKey, codecKeyKey))
	}
	// Readable by any user: the operator's image may run as non-root, and the pod runs nothing
	// else.
	return r.deployment(c, r.podTemplate(c, ctr, projected("pki", 0o444, sources...)))
}

func (r *renderer) deployment(c kokv1.ControlPlaneComponentName, tpl corev1.PodTemplateSpec) *appsv1.Deployment {
	tm, om := r.meta("Deployment", "apps/v1", c)
	om.Annotations = r.versionAnnotations(c)
	return &appsv1.Deployment{TypeMeta: tm, ObjectMeta: om, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(r.in.Masters),
		Selector: &metav1.LabelSelector{MatchLabels: r.selector(c)},
		Template: tpl,
	}}
}

// secretItems projects keys of one Secret to paths: key1, path1, key2, path2, ...
func secretItems(secret string, keyPaths ...string) corev1.VolumeProjection {
	p := corev1.VolumeProjection{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: secret}}}
	for i := 0; i+1 < len(keyPaths); i += 2 {
		p.Secret.Items = append(p.Secret.Items, corev1.KeyToPath{Key: keyPaths[i], Path: keyPaths[i+1]})
	}
	return p
}

func projected(name string, mode int32, sources ...corev1.VolumeProjection) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: sources, DefaultMode: ptr.To(mode),
	}}}
}

func httpProbe(scheme corev1.URIScheme, path string, port int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port), Scheme: scheme}},
		PeriodSeconds:    5,
		TimeoutSeconds:   5,
		FailureThreshold: 3,
	}
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

// flags renders a flag map as --name=value, sorted so the same map is the same command line.
func flags(args map[string]string) []string {
	out := make([]string, 0, len(args))
	for _, k := range slices.Sorted(maps.Keys(args)) {
		out = append(out, "--"+k+"="+args[k])
	}
	return out
}

// SecretsUsed are the Secrets objs mount that they do not carry themselves: the PKI Secrets
// that must exist before the pods can start. Sorted.
func SecretsUsed(objs []client.Object) []string {
	own := map[string]bool{}
	used := map[string]bool{}
	for _, o := range objs {
		var spec *corev1.PodSpec
		switch o := o.(type) {
		case *corev1.Secret:
			own[o.Name] = true
		case *appsv1.Deployment:
			spec = &o.Spec.Template.Spec
		case *appsv1.StatefulSet:
			spec = &o.Spec.Template.Spec
		}
		if spec == nil {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Projected == nil {
				continue
			}
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					used[s.Secret.Name] = true
				}
			}
		}
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(used)) {
		if !own[name] {
			out = append(out, name)
		}
	}
	return out
}
