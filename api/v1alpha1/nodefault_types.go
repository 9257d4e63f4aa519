package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FaultType is what went wrong on a node.
// +kubebuilder:validation:Enum=NodeNotReady;KernelDeadlock;DiskFailure;NetworkUnavailable;ComponentUnhealthy;AgentLost;HardwareFailure;Other
type FaultType string

const (
	FaultNodeNotReady       FaultType = "NodeNotReady"
	FaultKernelDeadlock     FaultType = "KernelDeadlock"
	FaultDiskFailure        FaultType = "DiskFailure"
	FaultNetworkUnavailable FaultType = "NetworkUnavailable"
	// FaultComponentUnhealthy: a node package fails its health check; spec.component names it.
	FaultComponentUnhealthy FaultType = "ComponentUnhealthy"
	// FaultAgentLost: no agent polls the host's task queue.
	FaultAgentLost       FaultType = "AgentLost"
	FaultHardwareFailure FaultType = "HardwareFailure"
	FaultOther           FaultType = "Other"
)

// FaultSource is who reported a fault.
// +kubebuilder:validation:Enum=Agent;Detector;Human
type FaultSource string

const (
	// FaultSourceAgent: the node's own agent.
	FaultSourceAgent FaultSource = "Agent"
	// FaultSourceDetector: kok-manager's fault detector (lease, conditions, pollers).
	FaultSourceDetector FaultSource = "Detector"
	// FaultSourceHuman: an operator, through kubectl or the kok CLI.
	FaultSourceHuman FaultSource = "Human"
)

// FaultSeverity is how bad a fault is.
// +kubebuilder:validation:Enum=Info;Warning;Critical
type FaultSeverity string

const (
	SeverityInfo     FaultSeverity = "Info"
	SeverityWarning  FaultSeverity = "Warning"
	SeverityCritical FaultSeverity = "Critical"
)

// RepairAction is how a fault is repaired.
// +kubebuilder:validation:Enum=Auto;RestartComponent;Reboot;OSReinstall;HardwareRepair;None
type RepairAction string

const (
	// RepairAuto lets kok pick, escalating from the least disruptive action by fault type.
	RepairAuto             RepairAction = "Auto"
	RepairRestartComponent RepairAction = "RestartComponent"
	RepairReboot           RepairAction = "Reboot"
	RepairOSReinstall      RepairAction = "OSReinstall"
	// RepairHardwareRepair isolates the node and waits for a human to report the repair done.
	RepairHardwareRepair RepairAction = "HardwareRepair"
	// RepairNone records the fault and does nothing.
	RepairNone RepairAction = "None"
)

// NodeFaultPhase is where the repair of a fault stands.
// +kubebuilder:validation:Enum=Open;Isolating;Migrating;Repairing;Verifying;Resolved;Escalated;Retired
type NodeFaultPhase string

const (
	// NodeFaultOpen: recorded; waits for a repair permit.
	NodeFaultOpen NodeFaultPhase = "Open"
	// NodeFaultIsolating: the node is being made unschedulable.
	NodeFaultIsolating NodeFaultPhase = "Isolating"
	// NodeFaultMigrating: workloads are being drained off the node.
	NodeFaultMigrating NodeFaultPhase = "Migrating"
	// NodeFaultRepairing: the repair action runs.
	NodeFaultRepairing NodeFaultPhase = "Repairing"
	// NodeFaultVerifying: checks that the fault is gone before the node returns to service.
	NodeFaultVerifying NodeFaultPhase = "Verifying"
	// NodeFaultResolved: the fault is gone and the node is back in service.
	NodeFaultResolved NodeFaultPhase = "Resolved"
	// NodeFaultEscalated: automatic repair gave up (or spec.repair.escalateAfter passed); a
	// human must resolve or retire the node.
	NodeFaultEscalated NodeFaultPhase = "Escalated"
	// NodeFaultRetired: the node was taken out of the fleet for good.
	NodeFaultRetired NodeFaultPhase = "Retired"
)

// NodeFault condition types, beside Progressing.
const (
	// NodeFaultConditionResolved is True once the fault is gone.
	NodeFaultConditionResolved = "Resolved"
	// NodeFaultConditionEscalated is True while a human must act; the message says what.
	NodeFaultConditionEscalated = "Escalated"
)

// NodeFaultSpec describes one fault on one node.
// +kubebuilder:validation:XValidation:rule="self.type != 'ComponentUnhealthy' || has(self.component)",message="component is required when type is ComponentUnhealthy",fieldPath=".component"
type NodeFaultSpec struct {
	// nodeName is the node (and Machine) with the fault. Immutable: a fault on another node is
	// another NodeFault.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="nodeName is immutable: a fault on another node is a new NodeFault"
	NodeName string `json:"nodeName"`
	// type is what went wrong. Immutable: a different fault is a new NodeFault.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="type is immutable: a different fault is a new NodeFault"
	Type FaultType `json:"type"`
	// component is the node package at fault; required when type is ComponentUnhealthy.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Component string `json:"component,omitempty"`
	// source is who reported the fault: Agent, Detector or Human.
	// +required
	Source FaultSource `json:"source"`
	// severity is how bad the fault is: Info, Warning or Critical. Default Warning.
	// +optional
	// +kubebuilder:default=Warning
	Severity FaultSeverity `json:"severity,omitempty"`
	// message describes the fault for humans, at most 4096 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
	// detectedAt is when the fault was first seen; empty means when the object was created.
	// +optional
	DetectedAt *metav1.Time `json:"detectedAt,omitempty"`
	// repair says how the fault is repaired and when a human takes over.
	// +optional
	// +kubebuilder:default={}
	Repair FaultRepair `json:"repair,omitempty"`
}

// FaultRepair says how a fault is repaired.
type FaultRepair struct {
	// action is the repair to run. Default Auto.
	// +optional
	// +kubebuilder:default=Auto
	Action RepairAction `json:"action,omitempty"`
	// escalateAfter is how long automatic repair may try before the fault is escalated to a
	// human, counted from detection. A duration from 1m to 720h. Default 48h.
	// +optional
	// +kubebuilder:default="48h"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('720h')",message="repair.escalateAfter must be between 1m and 720h"
	EscalateAfter *metav1.Duration `json:"escalateAfter,omitempty"`
}

// NodeFaultStatus is the observed state of a fault's repair.
type NodeFaultStatus struct {
	// phase is where the repair stands; see NodeFaultPhase.
	// +optional
	Phase NodeFaultPhase `json:"phase,omitempty"`
	// attempts is how many repair actions have run.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// escalatedAt is when the fault was escalated to a human.
	// +optional
	EscalatedAt *metav1.Time `json:"escalatedAt,omitempty"`
	// resolvedAt is when the fault was resolved.
	// +optional
	ResolvedAt *metav1.Time `json:"resolvedAt,omitempty"`
	// message says what the repair is doing or waiting for, for humans.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
	// workflow is the fault's NodeRepair workflow.
	// +optional
	Workflow *WorkflowRef `json:"workflow,omitempty"`
	// conditions are the latest observations, one per type: Progressing, Resolved, Escalated.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the metadata.generation that the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// NodeFault is one fault on one node, as recorded by the event center, and the state of its
// repair: isolate, migrate, repair, verify, and escalate to a human when that does not work.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=nf,categories=kok
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.spec.nodeName`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Severity",type=string,JSONPath=`.spec.severity`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Attempts",type=integer,JSONPath=`.status.attempts`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.source`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeFault struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the fault.
	// +required
	Spec NodeFaultSpec `json:"spec"`
	// status is written by kok.
	// +optional
	Status NodeFaultStatus `json:"status,omitempty"`
}

// NodeFaultList is a list of NodeFaults.
// +kubebuilder:object:root=true
type NodeFaultList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the listed NodeFaults.
	Items []NodeFault `json:"items"`
}
