package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ControlPlaneComponentName names one control-plane component of a business cluster.
// +kubebuilder:validation:Enum=etcd;kube-apiserver;kube-controller-manager;kube-scheduler;machine-operator
type ControlPlaneComponentName string

const (
	ComponentEtcd                  ControlPlaneComponentName = "etcd"
	ComponentKubeAPIServer         ControlPlaneComponentName = "kube-apiserver"
	ComponentKubeControllerManager ControlPlaneComponentName = "kube-controller-manager"
	ComponentKubeScheduler         ControlPlaneComponentName = "kube-scheduler"
	// ComponentMachineOperator is kok's own operator for Machines, NodeRollouts, NodeFaults and
	// RateLimitPolicies; a cluster without it has no node management.
	ComponentMachineOperator ControlPlaneComponentName = "machine-operator"
)

// Reasons of a ClusterPackageVersion's Ready condition.
const (
	// ReasonArtifactUnreachable: an artifact could not be downloaded.
	ReasonArtifactUnreachable = "ArtifactUnreachable"
	// ReasonChecksumMismatch: a downloaded artifact's sha256 differs from the one declared.
	ReasonChecksumMismatch = "ChecksumMismatch"
)

// ClusterPackageVersionSpec is one released set of control-plane components. It is immutable.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: package versions are immutable, create a new ClusterPackageVersion instead"
type ClusterPackageVersionSpec struct {
	// kubernetesVersion is the Kubernetes release this set makes up, vMAJOR.MINOR.PATCH such as
	// v1.37.2. Upgrades and rollbacks compare it to enforce the supported version skew.
	// +required
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^v[0-9]+\.[0-9]+\.[0-9]+$`
	KubernetesVersion string `json:"kubernetesVersion"`
	// components lists each control-plane component once, by name. etcd, kube-apiserver,
	// kube-controller-manager and kube-scheduler are required; machine-operator is optional.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=4
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:validation:XValidation:rule="['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'].all(n, self.exists(c, c.name == n))",message="components must include etcd, kube-apiserver, kube-controller-manager and kube-scheduler"
	Components []ControlPlaneComponent `json:"components"`
}

// ControlPlaneComponent is one component of a ClusterPackageVersion. The process provider runs
// its artifact on the master hosts; the kok provider runs its image as pods in the meta cluster.
// +kubebuilder:validation:XValidation:rule="has(self.artifact) || has(self.image)",message="each component needs an artifact (provider process), an image (provider kok), or both"
type ControlPlaneComponent struct {
	// name is the component: etcd, kube-apiserver, kube-controller-manager, kube-scheduler or
	// machine-operator.
	// +required
	Name ControlPlaneComponentName `json:"name"`
	// version is the component's own version, such as v3.7.0 for etcd: lowercase letters,
	// digits, '-' and '.', at most 128 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Version string `json:"version"`
	// artifact is the binary (or archive holding it) that the process provider installs on each
	// master host; the agent verifies its sha256 first.
	// +optional
	Artifact *Artifact `json:"artifact,omitempty"`
	// image is the container image that the kok provider runs, pinned by digest
	// (name@sha256:<64 hex>) so that the version stays immutable. At most 512 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^\S+@sha256:[a-f0-9]{64}$`
	Image string `json:"image,omitempty"`
	// args are the component's default command-line flags, name (without leading dashes) to
	// value, such as "feature-gates": "A=true". A Cluster can override them. At most 64.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z0-9][-A-Za-z0-9_.]{0,127}$'))",message="args keys must be flag names without leading dashes, such as feature-gates"
	Args map[string]string `json:"args,omitempty"`
	// healthCheck tells when the component is healthy. Without it only "the process runs" (or
	// "the pod is ready") counts.
	// +optional
	HealthCheck *Probe `json:"healthCheck,omitempty"`
}

// ClusterPackageVersionStatus reports whether the catalogue entry can be used.
type ClusterPackageVersionStatus struct {
	// phase is Pending until the artifacts are checked, then Available or Invalid.
	// +optional
	Phase PackageVersionPhase `json:"phase,omitempty"`
	// conditions are the latest observations, one per type: Ready (artifacts verified).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the metadata.generation that the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// ClusterPackageVersion is the catalogue entry for one control-plane release: the version,
// artifact or image, default flags and health check of each control-plane component. It never
// changes once created; a Cluster upgrades or rolls back by naming another one.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cpv,categories=kok
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Kubernetes",type=string,JSONPath=`.spec.kubernetesVersion`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterPackageVersion struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the release's content; immutable.
	// +required
	Spec ClusterPackageVersionSpec `json:"spec"`
	// status is written by kok.
	// +optional
	Status ClusterPackageVersionStatus `json:"status,omitempty"`
}

// ClusterPackageVersionList is a list of ClusterPackageVersions.
// +kubebuilder:object:root=true
type ClusterPackageVersionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the listed ClusterPackageVersions.
	Items []ClusterPackageVersion `json:"items"`
}
