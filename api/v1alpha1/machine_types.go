package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MachinePhase is where a Machine stands.
// +kubebuilder:validation:Enum=Pending;Provisioning;Ready;NotReady;Degraded;Blocked;Paused;Deleting
type MachinePhase string

const (
	// MachinePending: accepted, no workflow has acted yet.
	MachinePending MachinePhase = "Pending"
	// MachineProvisioning: packages are being installed, upgraded or removed.
	MachineProvisioning MachinePhase = "Provisioning"
	// MachineReady: every package runs at its spec version and passes its health check.
	MachineReady MachinePhase = "Ready"
	// MachineNotReady: the node or its agent does not answer.
	MachineNotReady MachinePhase = "NotReady"
	// MachineDegraded: some package fails its health check.
	MachineDegraded MachinePhase = "Degraded"
	// MachineBlocked: a change waits for a rate-limit permit or a missing package version.
	MachineBlocked MachinePhase = "Blocked"
	// MachinePaused: spec.paused is true; nothing changes.
	MachinePaused MachinePhase = "Paused"
	// MachineDeleting: the Machine is being deleted.
	MachineDeleting MachinePhase = "Deleting"
)

// ComponentPhase is where one package stands on one Machine.
// +kubebuilder:validation:Enum=Pending;Installing;Upgrading;Removing;Running;Failed
type ComponentPhase string

const (
	ComponentPending    ComponentPhase = "Pending"
	ComponentInstalling ComponentPhase = "Installing"
	ComponentUpgrading  ComponentPhase = "Upgrading"
	ComponentRemoving   ComponentPhase = "Removing"
	ComponentRunning    ComponentPhase = "Running"
	ComponentFailed     ComponentPhase = "Failed"
)

// ReadinessGateMode says how long a readiness gate holds the node back.
// +kubebuilder:validation:Enum=Continuous;Bootstrap
type ReadinessGateMode string

const (
	// GateContinuous: the condition must stay True; the node turns unschedulable when it is not.
	GateContinuous ReadinessGateMode = "Continuous"
	// GateBootstrap: the condition must be True once, before the node first becomes
	// schedulable; later changes are ignored.
	GateBootstrap ReadinessGateMode = "Bootstrap"
)

// Machine condition types, beside Ready and Progressing.
const (
	// MachineConditionPackagesInSync is True when every package runs at its spec version.
	MachineConditionPackagesInSync = "PackagesInSync"
	// MachineConditionAgentConnected is True while the host's agent polls its task queue.
	MachineConditionAgentConnected = "AgentConnected"
	// MachineConditionSchedulable is True when every readiness gate holds and no isolation is
	// requested; its message names what keeps the node unschedulable.
	MachineConditionSchedulable = "Schedulable"
)

// Machine condition reasons.
const (
	// ReasonIsolated: spec.isolations is not empty.
	ReasonIsolated = "Isolated"
	// ReasonReadinessGateNotTrue: a readiness gate's condition is not True.
	ReasonReadinessGateNotTrue = "ReadinessGateNotTrue"
	// ReasonDriftCorrected: the drift check found the host off its spec and put it back.
	ReasonDriftCorrected = "DriftCorrected"
	// ReasonNoPoller: no agent polls the host's task queue.
	ReasonNoPoller = "NoPoller"
	// ReasonAgentAbsent: the host's agent did not pick up or did not finish a task in time (it
	// is stopped, restarting or cut off). The workflow waits for it with backoff: an absent
	// agent is not a failed package.
	ReasonAgentAbsent = "AgentAbsent"
	// ReasonPolling: the host's agent answers.
	ReasonPolling = "Polling"
	// ReasonArtifactUnavailable: a package's artifact could not be downloaded for now (for
	// example the server answered 503); the workflow tries again with backoff.
	ReasonArtifactUnavailable = "ArtifactUnavailable"
	// ReasonOperatorUnavailable: no machine operator of the cluster served the workflow's
	// Kubernetes calls in time; the workflow waits for one with backoff.
	ReasonOperatorUnavailable = "OperatorUnavailable"
	// ReasonInvalidSpec: the packages cannot be planned (a dependency cycle, a missing one).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonAllGatesPassed: the node is schedulable.
	ReasonAllGatesPassed = "AllGatesPassed"
	// ReasonNodeNotRegistered: the kubelet has not registered the Node yet.
	ReasonNodeNotRegistered = "NodeNotRegistered"
	// ReasonMalformed: a Condition ConfigMap holds an entry kok cannot read.
	ReasonMalformed = "Malformed"
	// ReasonRetrying: a step failed in a way that may pass on its own; it is tried again.
	ReasonRetrying = "Retrying"
)

// MachineConditionConditionMapsValid is False when a Condition ConfigMap of the node holds an
// entry kok cannot read; its message says which.
const MachineConditionConditionMapsValid = "ConditionMapsValid"

// AnnotationOrphan on a Machine being deleted, set to "true", tells its workflow to leave the
// host as it is and let the Machine go, as deletionPolicy Orphan does: for a host whose agent
// will never answer again. (spec.deletionPolicy may also still be edited while deleting; the
// annotation works where a person cannot or should not edit the spec.)
const AnnotationOrphan = "kok.dev/orphan"

// MachineSpec is the declared state of one node.
type MachineSpec struct {
	// host is the name of the kok-agent host that carries the node; its agent listens on task
	// queue kok-host-<host>. Empty means the Machine's own name (see Machine.HostName).
	// Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Host string `json:"host,omitempty"`
	// packages are the node packages and versions the node must run, each package once. Adding
	// one installs it, changing a version upgrades or rolls it back, removing one uninstalls it.
	// Each entry must name an existing MachinePackageVersion <name>-<version>. At most 64.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Packages []PackageRef `json:"packages,omitempty"`
	// readinessGates are conditions that must be True before the node is schedulable, one entry
	// per condition type. At most 32.
	// +optional
	// +listType=map
	// +listMapKey=conditionType
	// +kubebuilder:validation:MaxItems=32
	ReadinessGates []ReadinessGate `json:"readinessGates,omitempty"`
	// isolations are requests to keep the node unschedulable, one per requester; the node is
	// unschedulable while any is present. At most 32.
	// +optional
	// +listType=map
	// +listMapKey=requester
	// +kubebuilder:validation:MaxItems=32
	Isolations []Isolation `json:"isolations,omitempty"`
	// paused stops every change to the node (including drift correction) while true. Default
	// false.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// driftCheckInterval is the time between the workflow's checks that the host still matches
	// the spec (the agent also keeps the host at spec on its own, every minute or two, and
	// reports what it repaired at the next check). A duration, 10s to 24h. Default 15m.
	// +optional
	// +kubebuilder:default="15m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="driftCheckInterval must be between 10s and 24h"
	DriftCheckInterval *metav1.Duration `json:"driftCheckInterval,omitempty"`
	// deletionPolicy says what deleting the Machine does: Delete removes its packages from the
	// host and deletes the Node, Orphan leaves the host as it is. Default Delete.
	// +optional
	// +kubebuilder:default=Delete
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// ReadinessGate is one condition that must be True before the node is schedulable.
type ReadinessGate struct {
	// conditionType is the condition's type as an operator reports it for the node (in its
	// Condition ConfigMap), optionally prefixed by a DNS subdomain: example.com/NetworkReady.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=316
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$`
	ConditionType string `json:"conditionType"`
	// mode is Continuous (must stay True) or Bootstrap (must be True once). Default Continuous.
	// +optional
	// +kubebuilder:default=Continuous
	Mode ReadinessGateMode `json:"mode,omitempty"`
}

// Isolation is one request to keep the node unschedulable.
type Isolation struct {
	// requester identifies who asked, such as noderepair/disk-failure-node-7; the same
	// requester removes its own entry. At most 253 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$`
	Requester string `json:"requester"`
	// reason says why, for humans. At most 1024 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason,omitempty"`
	// since is when the isolation was requested.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
}

// MachineStatus is the observed state of a Machine.
type MachineStatus struct {
	// phase is where the node stands; see MachinePhase.
	// +optional
	Phase MachinePhase `json:"phase,omitempty"`
	// schedulable is true when the Machine's workflow has made the node schedulable.
	// +optional
	Schedulable bool `json:"schedulable"`
	// versions summarises the running packages, sorted by name: containerd=1.7.2,kubelet=v1.37.2.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Versions string `json:"versions,omitempty"`
	// components is the state of each package on the host, by name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	Components []MachineComponentStatus `json:"components,omitempty"`
	// host holds facts the agent reported about the host.
	// +optional
	Host *HostFacts `json:"host,omitempty"`
	// lastDriftCheckTime is when the host was last compared with the spec.
	// +optional
	LastDriftCheckTime *metav1.Time `json:"lastDriftCheckTime,omitempty"`
	// workflow is the Machine's entity workflow.
	// +optional
	Workflow *WorkflowRef `json:"workflow,omitempty"`
	// conditions are the latest observations, one per type: Ready, Progressing, PackagesInSync,
	// AgentConnected, Schedulable.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the metadata.generation that the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// observedInputs is the watcher's digest of everything the Machine's workflow reads (its
	// spec, its node's Condition ConfigMaps, its Node's presence) that the workflow has acted
	// on. A watcher that restarts signals only the Machines whose inputs differ from it, so an
	// operator restart over 10,000 Machines causes no storm.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	ObservedInputs string `json:"observedInputs,omitempty"`
}

// MachineComponentStatus is the observed state of one package on one host.
type MachineComponentStatus struct {
	// name is the package.
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// version is the version installed (during an upgrade, the one being installed).
	// +optional
	// +kubebuilder:validation:MaxLength=128
	Version string `json:"version,omitempty"`
	// phase is where the package stands.
	// +optional
	Phase ComponentPhase `json:"phase,omitempty"`
	// message says what failed or what the step is doing.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
	// lastTransitionTime is when phase last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// HostFacts are facts the agent reports about its host.
type HostFacts struct {
	// os is the operating system and release, such as "Debian GNU/Linux 13".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	OS string `json:"os,omitempty"`
	// kernel is the kernel release, such as 6.12.0-1-amd64.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Kernel string `json:"kernel,omitempty"`
	// arch is the CPU architecture in Go's naming, such as amd64 or arm64.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Arch string `json:"arch,omitempty"`
	// agentVersion is the kok-agent's version.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	AgentVersion string `json:"agentVersion,omitempty"`
}

// Machine is one node of a business cluster, declared: which packages it runs and what must
// hold before it is schedulable. Its name is the node name. kok installs, upgrades and removes
// packages to match, corrects drift, and alone decides when the node is schedulable.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=mach,categories=kok
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Versions",type=string,JSONPath=`.status.versions`
// +kubebuilder:printcolumn:name="Schedulable",type=boolean,JSONPath=`.status.schedulable`
// +kubebuilder:printcolumn:name="Host",type=string,JSONPath=`.spec.host`,priority=1
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="(has(self.spec.host) ? self.spec.host : self.metadata.name) == (has(oldSelf.spec.host) ? oldSelf.spec.host : oldSelf.metadata.name)",message="spec.host is immutable: a Machine stays on one agent host; delete it and create a new one to move",fieldPath=".spec.host"
type Machine struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the declared state of the node.
	// +optional
	// +kubebuilder:default={}
	Spec MachineSpec `json:"spec,omitempty"`
	// status is written by kok.
	// +optional
	Status MachineStatus `json:"status,omitempty"`
}

// HostName is the name of the agent host that carries the Machine: spec.host, or the Machine's
// name when spec.host is empty.
func (m *Machine) HostName() string {
	if m.Spec.Host != "" {
		return m.Spec.Host
	}
	return m.Name
}

// MachineList is a list of Machines.
// +kubebuilder:object:root=true
type MachineList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the listed Machines.
	Items []Machine `json:"items"`
}
