package v1alpha1

// Types and constants shared by several kinds. Validation limits here keep every string and list
// bounded, so that the API server can estimate the cost of each CEL rule that reads them.

// Condition types used by more than one kind. Kind-specific types live beside their kind.
const (
	// ConditionReady is True when the real state matches the spec and passes its health checks.
	ConditionReady = "Ready"
	// ConditionProgressing is True while an operation is changing the real state.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True while something is unhealthy but the object still serves.
	ConditionDegraded = "Degraded"
	// ConditionWorkflowRunning is True while the object's Temporal workflow is running.
	ConditionWorkflowRunning = "WorkflowRunning"
)

// Condition reasons used by more than one kind.
const (
	// ReasonSucceeded: the last operation finished and its health checks passed.
	ReasonSucceeded = "Succeeded"
	// ReasonInProgress: an operation is under way; the message says which step.
	ReasonInProgress = "InProgress"
	// ReasonFailed: the last operation failed; the message says why and what to do.
	ReasonFailed = "Failed"
	// ReasonPaused: spec.paused is true, so nothing changes until it is cleared.
	ReasonPaused = "Paused"
	// ReasonWaitingForHuman: kok stopped and waits for a signal (approve, resume, resolve, ...).
	ReasonWaitingForHuman = "WaitingForHuman"
	// ReasonRateLimited: the rate limiter denied a permit; the change waits for budget.
	ReasonRateLimited = "RateLimited"
	// ReasonHealthCheckFailed: a health check or business metric breached its threshold.
	ReasonHealthCheckFailed = "HealthCheckFailed"
	// ReasonNotFound: a referenced object does not exist.
	ReasonNotFound = "NotFound"
)

// DeletionPolicy says what deleting a kok object does to the real thing it manages.
// +kubebuilder:validation:Enum=Delete;Orphan
type DeletionPolicy string

const (
	// DeletionPolicyDelete tears the real thing down before the object goes away.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyOrphan leaves the real thing running and only forgets it.
	DeletionPolicyOrphan DeletionPolicy = "Orphan"
)

// PackageRef names one version of one package.
type PackageRef struct {
	// name is the package (component) name, a DNS label such as containerd or kubelet.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// version is the package version: lowercase letters, digits, '-' and '.', such as 1.7.2 or
	// v1.37.2. Together with name it finds exactly one MachinePackageVersion, <name>-<version>.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Version string `json:"version"`
}

// Artifact is a downloadable file and the checksum the agent verifies before using it.
type Artifact struct {
	// url is where the agent downloads the artifact: http, https or file (for local hosts).
	// At most 2048 characters.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^(https?|file)://\S+$`
	URL string `json:"url"`
	// sha256 is the artifact's SHA-256 digest: 64 lowercase hexadecimal characters. A download
	// whose digest differs is refused and never retried.
	// +required
	// +kubebuilder:validation:Pattern=`^[a-f0-9]{64}$`
	SHA256 string `json:"sha256"`
}

// WorkflowRef points at the Temporal workflow that owns an object's changes.
type WorkflowRef struct {
	// id is the workflow ID, derived from the object: <kind>/<cluster>/<name>.
	// +kubebuilder:validation:MaxLength=1000
	ID string `json:"id,omitempty"`
	// runID is the workflow's current run; it changes on every continue-as-new.
	// +kubebuilder:validation:MaxLength=255
	RunID string `json:"runID,omitempty"`
	// url opens the workflow in the Temporal Web UI.
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url,omitempty"`
}

// Probe checks that a component is healthy. Exactly one of exec, http and tcp is set. A component
// is unhealthy after failureThreshold consecutive failed checks.
// +kubebuilder:validation:XValidation:rule="(has(self.exec) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.tcp) ? 1 : 0) == 1",message="healthCheck must set exactly one of exec, http or tcp"
// +kubebuilder:validation:XValidation:rule="!has(self.timeoutSeconds) || !has(self.periodSeconds) || self.timeoutSeconds <= self.periodSeconds",message="healthCheck.timeoutSeconds must not exceed healthCheck.periodSeconds"
type Probe struct {
	// exec runs a command on the host; exit status 0 is healthy.
	// +optional
	Exec *ExecProbe `json:"exec,omitempty"`
	// http sends a GET request; the expected status is healthy.
	// +optional
	HTTP *HTTPProbe `json:"http,omitempty"`
	// tcp opens a TCP connection; a connection is healthy.
	// +optional
	TCP *TCPProbe `json:"tcp,omitempty"`
	// initialDelaySeconds is how long to wait after the component starts before the first check.
	// Seconds, 0 to 3600, default 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	InitialDelaySeconds int32 `json:"initialDelaySeconds,omitempty"`
	// periodSeconds is the time between checks. Seconds, 1 to 3600, default 10.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	PeriodSeconds int32 `json:"periodSeconds,omitempty"`
	// timeoutSeconds bounds one check. Seconds, 1 to 600 and at most periodSeconds, default 5.
	// +optional
	// +kubebuilder:default=5
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
	// failureThreshold is how many consecutive failed checks make the component unhealthy.
	// 1 to 100, default 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	FailureThreshold int32 `json:"failureThreshold,omitempty"`
}

// ExecProbe runs a command on the host.
type ExecProbe struct {
	// command is the program and its arguments, run without a shell. 1 to 32 items of at most
	// 4096 characters each.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command"`
}

// HTTPProbe sends an HTTP GET request.
type HTTPProbe struct {
	// url is the http or https URL to GET, at most 2048 characters, such as
	// https://127.0.0.1:6443/livez.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://\S+$`
	URL string `json:"url"`
	// expectStatus is the HTTP status code of a healthy answer, 100 to 599, default 200.
	// +optional
	// +kubebuilder:default=200
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	ExpectStatus int32 `json:"expectStatus,omitempty"`
	// insecureSkipVerify skips verification of the server's certificate, for components that
	// serve their health endpoint on localhost with a certificate the agent cannot verify.
	// Default false.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// TCPProbe opens a TCP connection.
type TCPProbe struct {
	// address is host:port to connect to, such as 127.0.0.1:2379 or [::1]:2379.
	// +required
	// +kubebuilder:validation:MaxLength=261
	// +kubebuilder:validation:Pattern=`^\S+:[0-9]{1,5}$`
	Address string `json:"address"`
}

// PackageVersionPhase is where a package version (ClusterPackageVersion or MachinePackageVersion)
// stands in the catalogue.
// +kubebuilder:validation:Enum=Pending;Available;Invalid
type PackageVersionPhase string

const (
	// PackageVersionPending: not yet checked.
	PackageVersionPending PackageVersionPhase = "Pending"
	// PackageVersionAvailable: every artifact was fetched and matched its checksum.
	PackageVersionAvailable PackageVersionPhase = "Available"
	// PackageVersionInvalid: an artifact is unreachable or its checksum differs; the Ready
	// condition says which. Objects that point at it do not change.
	PackageVersionInvalid PackageVersionPhase = "Invalid"
)
