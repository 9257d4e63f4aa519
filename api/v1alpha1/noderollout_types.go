package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeRolloutPhase is where a NodeRollout stands. Every wait has its own phase.
// +kubebuilder:validation:Enum=Pending;Canary;WaitingForApproval;Progressing;Paused;Blocked;Succeeded;Failed;RollingBack;RolledBack;Aborted
type NodeRolloutPhase string

const (
	// NodeRolloutPending: accepted, no workflow has acted yet.
	NodeRolloutPending NodeRolloutPhase = "Pending"
	// NodeRolloutCanary: the canary machines are being changed and watched.
	NodeRolloutCanary NodeRolloutPhase = "Canary"
	// NodeRolloutWaitingForApproval: waits for an approve signal (spec.strategy.approval).
	NodeRolloutWaitingForApproval NodeRolloutPhase = "WaitingForApproval"
	// NodeRolloutProgressing: batches are being changed.
	NodeRolloutProgressing NodeRolloutPhase = "Progressing"
	// NodeRolloutPaused: paused by spec.paused, a signal, or a failure with onFailure Pause.
	NodeRolloutPaused NodeRolloutPhase = "Paused"
	// NodeRolloutBlocked: waits for a rate-limit permit or for the circuit breaker to close.
	NodeRolloutBlocked NodeRolloutPhase = "Blocked"
	// NodeRolloutSucceeded: every selected machine runs the packages and is healthy.
	NodeRolloutSucceeded NodeRolloutPhase = "Succeeded"
	// NodeRolloutFailed: stopped by failures and not rolled back.
	NodeRolloutFailed NodeRolloutPhase = "Failed"
	// NodeRolloutRollingBack: changed machines are being returned to their previous versions.
	NodeRolloutRollingBack NodeRolloutPhase = "RollingBack"
	// NodeRolloutRolledBack: every changed machine is back on its previous versions.
	NodeRolloutRolledBack NodeRolloutPhase = "RolledBack"
	// NodeRolloutAborted: stopped by a human; changed machines keep the new versions.
	NodeRolloutAborted NodeRolloutPhase = "Aborted"
)

// ApprovalPolicy says when a rollout waits for a human to approve.
// +kubebuilder:validation:Enum=None;AfterCanary;EveryBatch
type ApprovalPolicy string

const (
	// ApprovalNone never waits; health checks alone gate progress.
	ApprovalNone ApprovalPolicy = "None"
	// ApprovalAfterCanary waits once, after the canary machines are healthy.
	ApprovalAfterCanary ApprovalPolicy = "AfterCanary"
	// ApprovalEveryBatch waits after the canary and after every batch.
	ApprovalEveryBatch ApprovalPolicy = "EveryBatch"
)

// FailurePolicy says what a rollout does when failures exceed the budget or a metric breaches.
// +kubebuilder:validation:Enum=Pause;Rollback
type FailurePolicy string

const (
	// FailurePause stops and waits for a human.
	FailurePause FailurePolicy = "Pause"
	// FailureRollback returns every changed machine to its previous versions.
	FailureRollback FailurePolicy = "Rollback"
)

// MetricOperator compares a metric's value with its threshold; the metric is healthy while
// "value <operator> threshold" holds.
// +kubebuilder:validation:Enum=LessThan;LessThanOrEqual;GreaterThan;GreaterThanOrEqual
type MetricOperator string

const (
	MetricLessThan           MetricOperator = "LessThan"
	MetricLessThanOrEqual    MetricOperator = "LessThanOrEqual"
	MetricGreaterThan        MetricOperator = "GreaterThan"
	MetricGreaterThanOrEqual MetricOperator = "GreaterThanOrEqual"
)

// NodeRollout condition types, beside Progressing.
const (
	// NodeRolloutConditionMetricsHealthy is True while every spec.metrics entry holds.
	NodeRolloutConditionMetricsHealthy = "MetricsHealthy"
	// NodeRolloutConditionComplete is True once the rollout has ended, whatever the outcome;
	// its reason says which.
	NodeRolloutConditionComplete = "Complete"
)

// NodeRollout condition reasons.
const (
	// ReasonFailureBudgetExceeded: more machines failed than spec.strategy.maxFailures.
	ReasonFailureBudgetExceeded = "FailureBudgetExceeded"
	// ReasonMetricBreached: a spec.metrics entry failed; the message names it and its value.
	ReasonMetricBreached = "MetricBreached"
	// ReasonAborted: a human aborted the rollout.
	ReasonAborted = "Aborted"
)

// NodeRolloutSpec is a change of node packages across the machines a selector picks.
type NodeRolloutSpec struct {
	// packages are the package versions to set on every selected machine, each package once;
	// packages a machine has but this list does not name stay as they are. 1 to 64 entries.
	// Immutable: a different change is a new NodeRollout.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="packages is immutable: create a new NodeRollout for a different change"
	Packages []PackageRef `json:"packages"`
	// selector picks the Machines by label; {} picks every Machine. It is resolved once, when
	// the rollout starts. Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="selector is immutable: create a new NodeRollout for other machines"
	Selector metav1.LabelSelector `json:"selector"`
	// strategy is how fast the change spreads and when it waits.
	// +required
	Strategy RolloutStrategy `json:"strategy"`
	// metrics are business health checks, evaluated after the canary and after every batch; a
	// breach triggers onFailure. One entry per name, at most 16.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Metrics []RolloutMetric `json:"metrics,omitempty"`
	// onFailure is what happens when failures exceed strategy.maxFailures or a metric breaches:
	// Pause (wait for a human) or Rollback. Default Pause.
	// +optional
	// +kubebuilder:default=Pause
	OnFailure FailurePolicy `json:"onFailure,omitempty"`
	// paused stops the rollout before its next machine while true; machines in flight finish.
	// Default false.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// RolloutStrategy is how fast a rollout spreads and when it waits.
type RolloutStrategy struct {
	// canary is the first, small step; every rollout starts with one. Default {count: 1}.
	// +optional
	// +kubebuilder:default={count: 1}
	Canary *CanaryStrategy `json:"canary,omitempty"`
	// batchSize is how many machines change at once after the canary, 1 to 10000.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	BatchSize int32 `json:"batchSize"`
	// maxFailures is how many machines may fail (over the whole rollout) before onFailure
	// applies, 0 to 10000. Default 0: the first failure stops the rollout.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	MaxFailures int32 `json:"maxFailures,omitempty"`
	// pauseBetweenBatches is how long to wait (and keep watching metrics) after each batch, a
	// duration up to 24h. Default 0s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="strategy.pauseBetweenBatches must be at most 24h"
	PauseBetweenBatches *metav1.Duration `json:"pauseBetweenBatches,omitempty"`
	// approval is when the rollout waits for a human: None, AfterCanary or EveryBatch. Default
	// AfterCanary.
	// +optional
	// +kubebuilder:default=AfterCanary
	Approval ApprovalPolicy `json:"approval,omitempty"`
	// healthTimeout is how long each machine has to converge and pass its health checks before
	// it counts as failed, a duration from 30s to 24h. Default 10m.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('30s') && duration(self) <= duration('24h')",message="strategy.healthTimeout must be between 30s and 24h"
	HealthTimeout *metav1.Duration `json:"healthTimeout,omitempty"`
}

// CanaryStrategy is the first step of a rollout.
type CanaryStrategy struct {
	// count is how many machines change first, 1 to 100. Default 1.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Count int32 `json:"count,omitempty"`
}

// RolloutMetric is one business health check of a rollout. Exactly one of
// podCreationSuccessRate and prometheus is set.
// +kubebuilder:validation:XValidation:rule="(has(self.podCreationSuccessRate) ? 1 : 0) + (has(self.prometheus) ? 1 : 0) == 1",message="metrics[] must set exactly one of podCreationSuccessRate or prometheus"
type RolloutMetric struct {
	// name identifies the metric in status and messages, a DNS label.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// podCreationSuccessRate uses kok's built-in probe, which creates pods on the changed
	// machines and measures how many start.
	// +optional
	PodCreationSuccessRate *PodCreationSuccessRateMetric `json:"podCreationSuccessRate,omitempty"`
	// prometheus runs a PromQL query.
	// +optional
	Prometheus *PrometheusMetric `json:"prometheus,omitempty"`
}

// PodCreationSuccessRateMetric holds when the share of probe pods that start is high enough.
type PodCreationSuccessRateMetric struct {
	// minPercent is the lowest healthy success rate, in percent, 0 to 100.
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MinPercent int32 `json:"minPercent"`
}

// PrometheusMetric holds while a PromQL query's single value compares well with a threshold.
type PrometheusMetric struct {
	// address is the Prometheus server's base URL, http or https, at most 2048 characters.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://\S+$`
	Address string `json:"address"`
	// query is an instant PromQL query that returns one sample, at most 4096 characters. No
	// sample counts as a breach.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`
	// threshold is the value the result is compared with, a quantity such as 0.99 or 500m.
	// +required
	Threshold resource.Quantity `json:"threshold"`
	// operator compares: the metric holds while "value <operator> threshold".
	// +required
	Operator MetricOperator `json:"operator"`
}

// RolloutCounts counts the selected machines by where they stand.
type RolloutCounts struct {
	// total is how many machines the selector picked.
	// +optional
	Total int32 `json:"total,omitempty"`
	// updated is how many run the new packages and passed their health checks.
	// +optional
	Updated int32 `json:"updated,omitempty"`
	// failed is how many failed to converge or to pass their health checks.
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// inProgress is how many are changing now.
	// +optional
	InProgress int32 `json:"inProgress,omitempty"`
}

// NodeRolloutStatus is the observed state of a NodeRollout.
type NodeRolloutStatus struct {
	// phase is where the rollout stands; see NodeRolloutPhase.
	// +optional
	Phase NodeRolloutPhase `json:"phase,omitempty"`
	// counts counts the selected machines by where they stand.
	// +optional
	Counts RolloutCounts `json:"counts,omitempty"`
	// currentBatch is the batch in flight, counting from 1 after the canary (0: the canary).
	// +optional
	CurrentBatch int32 `json:"currentBatch,omitempty"`
	// totalBatches is how many batches the rollout has after the canary.
	// +optional
	TotalBatches int32 `json:"totalBatches,omitempty"`
	// failedMachines names machines that failed, the first 100 in failure order.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	FailedMachines []string `json:"failedMachines,omitempty"`
	// message says what the rollout is doing or waiting for, for humans.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`
	// startedAt is when the first machine was changed.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// completedAt is when the rollout ended, whatever the outcome.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
	// workflow is the rollout's workflow.
	// +optional
	Workflow *WorkflowRef `json:"workflow,omitempty"`
	// conditions are the latest observations, one per type: Progressing, MetricsHealthy, Complete.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the metadata.generation that the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// NodeRollout changes node packages across many Machines: a canary, an optional approval, then
// batches, watched by health checks and business metrics, paused or rolled back on failure.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=nro,categories=kok
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Total",type=integer,JSONPath=`.status.counts.total`
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.counts.updated`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.counts.failed`
// +kubebuilder:printcolumn:name="Batch",type=integer,JSONPath=`.status.currentBatch`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeRollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the declared change.
	// +required
	Spec NodeRolloutSpec `json:"spec"`
	// status is written by kok.
	// +optional
	Status NodeRolloutStatus `json:"status,omitempty"`
}

// NodeRolloutList is a list of NodeRollouts.
// +kubebuilder:object:root=true
type NodeRolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the listed NodeRollouts.
	Items []NodeRollout `json:"items"`
}
