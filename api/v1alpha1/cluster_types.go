package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterProvider says where a business cluster's control plane runs.
// +kubebuilder:validation:Enum=process;kok
type ClusterProvider string

const (
	// ProviderProcess runs each control-plane component as a service on the master hosts.
	ProviderProcess ClusterProvider = "process"
	// ProviderKok runs the control plane as Deployments and Services in the meta cluster.
	ProviderKok ClusterProvider = "kok"
)

// ClusterPhase is where a Cluster stands. Every wait has its own phase.
// +kubebuilder:validation:Enum=Pending;Creating;Running;Upgrading;RollingBack;Healing;WaitingForHuman;Paused;Deleting;Failed
type ClusterPhase string

const (
	// ClusterPending: accepted, no workflow has acted yet.
	ClusterPending ClusterPhase = "Pending"
	// ClusterCreating: the control plane is being brought up for the first time.
	ClusterCreating ClusterPhase = "Creating"
	// ClusterRunning: the control plane matches the spec and is healthy.
	ClusterRunning ClusterPhase = "Running"
	// ClusterUpgrading: masters move to spec.packageVersion, one at a time, canary first.
	ClusterUpgrading ClusterPhase = "Upgrading"
	// ClusterRollingBack: a failed upgrade is being undone (status.currentPackageVersion).
	ClusterRollingBack ClusterPhase = "RollingBack"
	// ClusterHealing: an unhealthy master or component is being isolated and recovered.
	ClusterHealing ClusterPhase = "Healing"
	// ClusterWaitingForHuman: automatic recovery is exhausted or a rollback was not allowed;
	// kok waits for a signal. The Ready condition's message says what happened.
	ClusterWaitingForHuman ClusterPhase = "WaitingForHuman"
	// ClusterPaused: spec.paused is true; nothing changes.
	ClusterPaused ClusterPhase = "Paused"
	// ClusterDeleting: the Cluster is being deleted (and, with deletionPolicy Delete, torn down).
	ClusterDeleting ClusterPhase = "Deleting"
	// ClusterFailed: an operation failed and could not be undone; see the conditions.
	ClusterFailed ClusterPhase = "Failed"
)

// ClusterOperationType names the operation that a Cluster's workflow is running.
// +kubebuilder:validation:Enum=Create;Upgrade;Rollback;Heal;Delete
type ClusterOperationType string

const (
	ClusterOperationCreate   ClusterOperationType = "Create"
	ClusterOperationUpgrade  ClusterOperationType = "Upgrade"
	ClusterOperationRollback ClusterOperationType = "Rollback"
	ClusterOperationHeal     ClusterOperationType = "Heal"
	ClusterOperationDelete   ClusterOperationType = "Delete"
)

// MasterPhase is where one master host stands.
// +kubebuilder:validation:Enum=Pending;Provisioning;Running;Upgrading;Unhealthy;Isolated;Removing
type MasterPhase string

const (
	MasterPending      MasterPhase = "Pending"
	MasterProvisioning MasterPhase = "Provisioning"
	MasterRunning      MasterPhase = "Running"
	MasterUpgrading    MasterPhase = "Upgrading"
	MasterUnhealthy    MasterPhase = "Unhealthy"
	// MasterIsolated: taken out of service (out of the endpoint) while it is recovered.
	MasterIsolated MasterPhase = "Isolated"
	MasterRemoving MasterPhase = "Removing"
)

// Cluster condition types, beside Ready, Progressing and Degraded.
const (
	// ClusterConditionPackageVersionResolved is True when spec.packageVersion names an
	// Available ClusterPackageVersion that carries what spec.provider needs.
	ClusterConditionPackageVersionResolved = "PackageVersionResolved"
	// ClusterConditionAPIServerAvailable is True when the cluster's API server answers on
	// status.endpoint.
	ClusterConditionAPIServerAvailable = "APIServerAvailable"
	// ClusterConditionReachable is False when the meta cluster cannot reach some masters at
	// all: neither their API servers answer nor their agents contradict it. A partition between
	// the meta cluster and the business cluster is not a fault of the cluster: kok then heals
	// nothing and counts no recovery, and the condition clears once the masters answer again.
	ClusterConditionReachable = "Reachable"
)

// Cluster condition reasons.
const (
	// ReasonRolledBack: an upgrade failed its health checks and was rolled back.
	ReasonRolledBack = "RolledBack"
	// ReasonRecoveryLimitReached: spec.health.maxAutoRecoveries recoveries happened within
	// spec.health.window; kok waits for a human.
	ReasonRecoveryLimitReached = "RecoveryLimitReached"
	// ReasonUnsupportedVersionSkew: spec.packageVersion is too far from the running version.
	ReasonUnsupportedVersionSkew = "UnsupportedVersionSkew"
	// ReasonRunning: the control plane runs the current package version and is healthy.
	ReasonRunning = "Running"
	// ReasonHealthy: every master passes its health checks (Degraded False).
	ReasonHealthy = "Healthy"
	// ReasonUnhealthy: some master fails its health checks (Degraded True, Ready False).
	ReasonUnhealthy = "Unhealthy"
	// ReasonIdle: no operation is in flight (Progressing False).
	ReasonIdle = "Idle"
	// ReasonResolved: spec.packageVersion names a usable ClusterPackageVersion.
	ReasonResolved = "Resolved"
	// ReasonAPIServerReady: the API server answers (APIServerAvailable True).
	ReasonAPIServerReady = "Ready"
	// ReasonCreating and ReasonDeleting: the control plane is being created or deleted.
	ReasonCreating = "Creating"
	ReasonDeleting = "Deleting"
	// ReasonHealing: an unhealthy master is being recovered.
	ReasonHealing = "Healing"
	// ReasonHealFailed: a recovery did not make a master healthy; the next check decides again.
	ReasonHealFailed = "HealFailed"
	// ReasonWorkloadsNotReady: provider kok, some control-plane workload is not rolled out.
	ReasonWorkloadsNotReady = "WorkloadsNotReady"
	// ReasonReachable and ReasonUnreachable: whether the meta cluster reaches every master.
	ReasonReachable   = "Reachable"
	ReasonUnreachable = "Unreachable"
	// ReasonRecoveredByItself: the masters that waited for a human passed their health checks
	// several times in a row without kok acting; the wait ends by itself.
	ReasonRecoveredByItself = "RecoveredByItself"
	// ReasonResolvedByHuman: a person resolved the wait (annotation kok.dev/resolve, or the
	// resolve signal).
	ReasonResolvedByHuman = "ResolvedByHuman"
)

// Cluster Event reasons (beside the condition reasons above, which Events also use).
const (
	EventClusterCreated         = "Created"
	EventClusterUpgraded        = "Upgraded"
	EventClusterUpgradeFailed   = "UpgradeFailed"
	EventClusterMasterUpgraded  = "MasterUpgraded"
	EventClusterMasterRecovered = "MasterRecovered"
	EventClusterComponentKept   = "ComponentKept"
)

// ClusterSpec is the declared control plane of one business cluster.
// +kubebuilder:validation:XValidation:rule="(has(self.provider) && self.provider == 'kok') || (has(self.masters.hosts) && size(self.masters.hosts) == self.masters.count)",message="masters.hosts must list exactly masters.count hosts when provider is process",fieldPath=".masters.hosts"
// +kubebuilder:validation:XValidation:rule="!has(self.provider) || self.provider != 'kok' || !has(self.masters.hosts)",message="masters.hosts must be empty when provider is kok: its control plane runs as pods in the meta cluster",fieldPath=".masters.hosts"
type ClusterSpec struct {
	// packageVersion is the name of the ClusterPackageVersion to run. Changing it upgrades (or
	// rolls back) the control plane, one master at a time.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	PackageVersion string `json:"packageVersion"`
	// provider is where the control plane runs: process (services on spec.masters.hosts) or kok
	// (pods in the meta cluster). Default process; immutable.
	// +optional
	// +kubebuilder:default=process
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="provider is immutable: create a new Cluster to change it"
	Provider ClusterProvider `json:"provider,omitempty"`
	// masters is the size and placement of the control plane.
	// +required
	Masters ClusterMasters `json:"masters"`
	// network holds the cluster's address ranges and API server port. Immutable.
	// +optional
	// +kubebuilder:default={}
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="network is immutable: the address ranges of a running cluster cannot change"
	Network ClusterNetwork `json:"network,omitempty"`
	// components overrides the package version's default flags per component. At most one entry
	// per component.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=5
	Components []ClusterComponent `json:"components,omitempty"`
	// upgrade says how upgrades and rollbacks behave.
	// +optional
	// +kubebuilder:default={}
	Upgrade ClusterUpgrade `json:"upgrade,omitempty"`
	// health says how often the control plane is checked and how much automatic recovery is
	// allowed before kok waits for a human.
	// +optional
	// +kubebuilder:default={}
	Health ClusterHealth `json:"health,omitempty"`
	// paused stops every change to the cluster (including automatic recovery) while true; an
	// operation in flight stops at its next step. Default false.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// deletionPolicy says what deleting the Cluster does: Delete tears the control plane down,
	// Orphan leaves it running. Default Delete.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// ClusterMasters is the size and placement of the control plane.
type ClusterMasters struct {
	// count is the number of masters (and etcd members): 1, 3 or 5. Default 1; immutable.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Enum=1;3;5
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="masters.count is immutable"
	Count int32 `json:"count,omitempty"`
	// hosts are the names of the kok-agent hosts that run the masters; required for provider
	// process, with exactly count distinct entries, and empty for provider kok. One edit may
	// replace at most one host, so that etcd keeps its quorum.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=5
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self.filter(h, !(h in oldSelf)).size() <= 1",message="masters.hosts may replace at most one host per change, so that etcd keeps quorum"
	Hosts []string `json:"hosts,omitempty"`
}

// ClusterNetwork holds a cluster's address ranges and API server port.
// +kubebuilder:validation:XValidation:rule="!has(self.serviceCIDR) || !has(self.podCIDR) || !isCIDR(self.serviceCIDR) || !isCIDR(self.podCIDR) || (!cidr(self.serviceCIDR).containsIP(cidr(self.podCIDR).ip()) && !cidr(self.podCIDR).containsIP(cidr(self.serviceCIDR).ip()))",message="network.serviceCIDR and network.podCIDR must not overlap"
type ClusterNetwork struct {
	// serviceCIDR is the range of Service cluster IPs, a network in CIDR form. Default
	// 10.96.0.0/12.
	// +optional
	// +kubebuilder:default="10.96.0.0/12"
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self) && cidr(self) == cidr(self).masked()",message="network.serviceCIDR must be a network in CIDR form, such as 10.96.0.0/12"
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// podCIDR is the range of pod IPs, a network in CIDR form. Default 10.244.0.0/16.
	// +optional
	// +kubebuilder:default="10.244.0.0/16"
	// +kubebuilder:validation:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="isCIDR(self) && cidr(self) == cidr(self).masked()",message="network.podCIDR must be a network in CIDR form, such as 10.244.0.0/16"
	PodCIDR string `json:"podCIDR,omitempty"`
	// apiServerPort is the port kube-apiserver serves on, 1 to 65535. Default 6443.
	// +optional
	// +kubebuilder:default=6443
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	APIServerPort int32 `json:"apiServerPort,omitempty"`
	// controlPlaneEndpoint is the host or host:port in front of the masters (a load balancer or
	// virtual IP) that clients use; it goes into the serving certificate and the kubeconfig.
	// Empty: the address of the masters themselves. At most 261 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:Pattern=`^[^\s/]+$`
	ControlPlaneEndpoint string `json:"controlPlaneEndpoint,omitempty"`
}

// ClusterComponent overrides one control-plane component's flags.
type ClusterComponent struct {
	// name is the component to override.
	// +required
	Name ControlPlaneComponentName `json:"name"`
	// args are flags, name (without leading dashes) to value, merged over the package version's
	// args: a key here replaces the default value. At most 64.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z0-9][-A-Za-z0-9_.]{0,127}$'))",message="components[].args keys must be flag names without leading dashes, such as feature-gates"
	Args map[string]string `json:"args,omitempty"`
}

// ClusterUpgrade says how upgrades and rollbacks behave.
type ClusterUpgrade struct {
	// autoRollback rolls back to status.currentPackageVersion when an upgrade fails its health
	// checks; when false kok stops in WaitingForHuman instead. Default true.
	// +optional
	// +kubebuilder:default=true
	AutoRollback *bool `json:"autoRollback,omitempty"`
	// healthTimeout is how long each upgraded master has to become healthy before the upgrade
	// counts as failed. A duration such as 5m, 30s to 1h. Default 5m.
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('30s') && duration(self) <= duration('1h')",message="upgrade.healthTimeout must be between 30s and 1h"
	HealthTimeout *metav1.Duration `json:"healthTimeout,omitempty"`
}

// ClusterHealth says how the control plane is watched and how far kok recovers it on its own.
type ClusterHealth struct {
	// checkInterval is the time between health checks of the masters. A duration, 5s to 1h.
	// Default 30s.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('5s') && duration(self) <= duration('1h')",message="health.checkInterval must be between 5s and 1h"
	CheckInterval *metav1.Duration `json:"checkInterval,omitempty"`
	// maxAutoRecoveries is how many automatic recoveries (restart, re-install or replace of a
	// master component) are allowed within window; past it kok waits for a human. 0 turns
	// automatic recovery off. 0 to 100, default 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxAutoRecoveries *int32 `json:"maxAutoRecoveries,omitempty"`
	// window is the sliding time window that maxAutoRecoveries counts in. A duration, 1m to
	// 168h. Default 1h.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('168h')",message="health.window must be between 1m and 168h"
	Window *metav1.Duration `json:"window,omitempty"`
}

// SecretKeyRef points at one key of a Secret.
type SecretKeyRef struct {
	// namespace of the Secret.
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// name of the Secret.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// key within the Secret's data.
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// ClusterStatus is the observed state of a Cluster.
type ClusterStatus struct {
	// phase is where the cluster stands; see ClusterPhase.
	// +optional
	Phase ClusterPhase `json:"phase,omitempty"`
	// currentPackageVersion is the ClusterPackageVersion that every master runs, and the one a
	// rollback returns to. Empty until the cluster is first created.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	CurrentPackageVersion string `json:"currentPackageVersion,omitempty"`
	// previousPackageVersion is the version the cluster ran before the last completed upgrade
	// or rollback: what `kok cluster rollback` points spec.packageVersion back to.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PreviousPackageVersion string `json:"previousPackageVersion,omitempty"`
	// targetPackageVersion is the version an operation in flight moves to; empty when none.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TargetPackageVersion string `json:"targetPackageVersion,omitempty"`
	// endpoint is the https URL of the cluster's API server.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Endpoint string `json:"endpoint,omitempty"`
	// kubeconfigSecretRef points at an admin kubeconfig for the cluster, in the meta cluster.
	// +optional
	KubeconfigSecretRef *SecretKeyRef `json:"kubeconfigSecretRef,omitempty"`
	// masters is the state of each master, by host (for provider kok, by pod ordinal).
	// +optional
	// +listType=map
	// +listMapKey=host
	// +kubebuilder:validation:MaxItems=5
	Masters []MasterStatus `json:"masters,omitempty"`
	// readyMasters is how many masters pass every health check.
	// +optional
	ReadyMasters int32 `json:"readyMasters,omitempty"`
	// recentAutoRecoveries is how many automatic recoveries happened within spec.health.window.
	// +optional
	RecentAutoRecoveries int32 `json:"recentAutoRecoveries,omitempty"`
	// operation is the operation in flight, if any.
	// +optional
	Operation *ClusterOperation `json:"operation,omitempty"`
	// workflow is the Cluster's entity workflow.
	// +optional
	Workflow *WorkflowRef `json:"workflow,omitempty"`
	// conditions are the latest observations, one per type: Ready, Progressing, Degraded,
	// PackageVersionResolved, APIServerAvailable, Reachable.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the metadata.generation that the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// MasterStatus is the observed state of one master.
type MasterStatus struct {
	// host is the master's agent host name.
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`
	// phase is where the master stands.
	// +optional
	Phase MasterPhase `json:"phase,omitempty"`
	// ready is true when every component on the master passes its health check.
	// +optional
	Ready bool `json:"ready,omitempty"`
	// components is the state of each control-plane component on the master.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=5
	Components []MasterComponentStatus `json:"components,omitempty"`
}

// MasterComponentStatus is the observed state of one control-plane component on one master.
type MasterComponentStatus struct {
	// name is the component.
	Name ControlPlaneComponentName `json:"name"`
	// version is the version running.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Version string `json:"version,omitempty"`
	// ready is true when the component passes its health check.
	// +optional
	Ready bool `json:"ready,omitempty"`
	// message says why the component is not ready.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
}

// ClusterOperation is the operation in flight on a Cluster.
type ClusterOperation struct {
	// type is the operation.
	Type ClusterOperationType `json:"type"`
	// step is the operation's current step, such as "upgrade canary master".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Step string `json:"step,omitempty"`
	// message says what the step is doing or waiting for.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
	// startedAt is when the operation started.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// canaryHost is the master that an upgrade changes first.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	CanaryHost string `json:"canaryHost,omitempty"`
}

// Cluster is one business cluster's control plane, declared: which package version it runs,
// where and how big. kok creates, upgrades, rolls back, heals and deletes it to match.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=kc,categories=kok
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.currentPackageVersion`
// +kubebuilder:printcolumn:name="Masters",type=integer,JSONPath=`.spec.masters.count`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyMasters`
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.spec.provider`,priority=1
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.targetPackageVersion`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Cluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the declared control plane.
	// +required
	Spec ClusterSpec `json:"spec"`
	// status is written by kok.
	// +optional
	Status ClusterStatus `json:"status,omitempty"`
}

// ClusterList is a list of Clusters.
// +kubebuilder:object:root=true
type ClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the listed Clusters.
	Items []Cluster `json:"items"`
}
