package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RateLimitedOperation is a kind of disruptive operation that asks the rate limiter first.
// +kubebuilder:validation:Enum=NodeDelete;OSReinstall;Reboot;Isolate;ComponentUpgrade;MasterUpgrade;NodeRepair
type RateLimitedOperation string

const (
	OperationNodeDelete       RateLimitedOperation = "NodeDelete"
	OperationOSReinstall      RateLimitedOperation = "OSReinstall"
	OperationReboot           RateLimitedOperation = "Reboot"
	OperationIsolate          RateLimitedOperation = "Isolate"
	OperationComponentUpgrade RateLimitedOperation = "ComponentUpgrade"
	OperationMasterUpgrade    RateLimitedOperation = "MasterUpgrade"
	OperationNodeRepair       RateLimitedOperation = "NodeRepair"
)

// RateLimitPolicyPhase is whether a policy grants permits now.
// +kubebuilder:validation:Enum=Active;Exhausted;CircuitOpen;Paused
type RateLimitPolicyPhase string

const (
	// RateLimitActive: permits are granted while budget remains.
	RateLimitActive RateLimitPolicyPhase = "Active"
	// RateLimitExhausted: maxInFlight or the window's budget is used up; requests wait.
	RateLimitExhausted RateLimitPolicyPhase = "Exhausted"
	// RateLimitCircuitOpen: fewer than minHealthyPercent of nodes are healthy; no permits until
	// enough recover or a human signals.
	RateLimitCircuitOpen RateLimitPolicyPhase = "CircuitOpen"
	// RateLimitPaused: spec.paused is true; no permits.
	RateLimitPaused RateLimitPolicyPhase = "Paused"
)

// RateLimitPolicy condition types.
const (
	// RateLimitPolicyConditionCircuitOpen is True while the circuit breaker holds every
	// operation of the policy's type.
	RateLimitPolicyConditionCircuitOpen = "CircuitOpen"
)

// RateLimitPolicySpec bounds one type of disruptive operation in a business cluster. When
// several policies name the same operation, a permit needs all of them to agree.
type RateLimitPolicySpec struct {
	// operation is the operation type the policy bounds.
	// +required
	Operation RateLimitedOperation `json:"operation"`
	// maxInFlight is how many operations of this type may run at once, 1 to 10000.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxInFlight int32 `json:"maxInFlight"`
	// window bounds how many operations may start within a sliding time window. Empty: no
	// bound beyond maxInFlight.
	// +optional
	Window *RateWindow `json:"window,omitempty"`
	// minHealthyPercent is the circuit breaker: when fewer than this share of the cluster's
	// nodes are Ready, no permit is granted. Percent, 0 to 100; empty turns the breaker off.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MinHealthyPercent *int32 `json:"minHealthyPercent,omitempty"`
	// paused grants no permit while true: an emergency brake. Operations in flight finish.
	// Default false.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// RateWindow bounds how many operations may start within a sliding time window.
type RateWindow struct {
	// duration is the window's length, a duration from 1s to 720h.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('720h')",message="window.duration must be between 1s and 720h"
	Duration metav1.Duration `json:"duration"`
	// maxOperations is how many operations may start within the window, 1 to 100000.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MaxOperations int32 `json:"maxOperations"`
}

// RateLimitPolicyStatus is the rate limiter's view of a policy.
type RateLimitPolicyStatus struct {
	// phase is whether the policy grants permits now; see RateLimitPolicyPhase.
	// +optional
	Phase RateLimitPolicyPhase `json:"phase,omitempty"`
	// inFlight is how many permits are held now.
	// +optional
	InFlight int32 `json:"inFlight,omitempty"`
	// usedInWindow is how many operations started within the current window.
	// +optional
	UsedInWindow int32 `json:"usedInWindow,omitempty"`
	// circuitOpen is true while the circuit breaker denies every permit.
	// +optional
	CircuitOpen bool `json:"circuitOpen,omitempty"`
	// healthyPercent is the share of Ready nodes the breaker last saw, in percent.
	// +optional
	HealthyPercent int32 `json:"healthyPercent,omitempty"`
	// conditions are the latest observations, one per type: Ready, CircuitOpen.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the metadata.generation that the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// RateLimitPolicy is a rule of the rate-limiting center: how many disruptive operations of one
// type may run at once and per time window, and below what node health they all stop.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=rlp,categories=kok
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Operation",type=string,JSONPath=`.spec.operation`
// +kubebuilder:printcolumn:name="Max-In-Flight",type=integer,JSONPath=`.spec.maxInFlight`
// +kubebuilder:printcolumn:name="In-Flight",type=integer,JSONPath=`.status.inFlight`
// +kubebuilder:printcolumn:name="Used-In-Window",type=integer,JSONPath=`.status.usedInWindow`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the rule.
	// +required
	Spec RateLimitPolicySpec `json:"spec"`
	// status is written by the rate limiter.
	// +optional
	Status RateLimitPolicyStatus `json:"status,omitempty"`
}

// RateLimitPolicyList is a list of RateLimitPolicies.
// +kubebuilder:object:root=true
type RateLimitPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the listed RateLimitPolicies.
	Items []RateLimitPolicy `json:"items"`
}
