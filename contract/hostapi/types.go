package hostapi

// The wire contract between the Machine workflow and kok-agent. Plain structs, no Kubernetes
// types: the workflow converts a MachinePackageVersion into a PackageSpec, so the agent neither
// needs the API nor ever reads it.

// PackageSpec is everything the agent needs to install and keep one package version.
type PackageSpec struct {
	Name        string
	Version     string
	Type        string // Component, KernelPatch or SystemSetting
	Installer   string // local, deb or rpm
	ArtifactURL string // http, https or file URL; empty for a SystemSetting
	SHA256      string // lowercase hex digest the artifact must match before anything changes
	DependsOn   []string
	ConfigFiles []ConfigFile
	Service     *ServiceSpec
	HealthCheck *ProbeSpec
	Sysctls     map[string]string
	// RebootRequired: the package takes effect only after a reboot (kernel patches).
	RebootRequired bool
}

// ConfigFile is a file written on the host. Path is absolute as seen from the host root.
type ConfigFile struct {
	Path    string
	Content string
	Mode    uint32 // permission bits; 0 means 0644, the API's default
}

// ServiceSpec is the long-running process of a package. In Command and Args the agent expands
// ${KOK_ROOT} (host root), ${KOK_HOST} (host name) and ${KOK_PACKAGE_DIR} (the installed
// version's directory, local installer), so one catalogue serves every simulated host.
type ServiceSpec struct {
	Name          string
	Command       []string
	Args          []string
	Env           map[string]string
	RestartPolicy string // Always or OnFailure
}

// ProbeSpec is one health check: exactly one of Exec, HTTPURL and TCPAddress is set. The agent
// expands ${KOK_ROOT}, ${KOK_HOST} and ${KOK_PACKAGE_DIR} in Exec, HTTPURL and TCPAddress as in a
// service's command. Zero periods, timeouts and thresholds take the API's defaults (10s, 5s, 3).
type ProbeSpec struct {
	Exec               []string
	HTTPURL            string
	ExpectStatus       int
	InsecureSkipVerify bool
	TCPAddress         string
	InitialDelaySec    int
	PeriodSec          int
	TimeoutSec         int
	FailureThreshold   int
}

// InstalledPackage is one package the agent has installed, from its state on the host.
type InstalledPackage struct {
	Name      string
	Version   string
	DependsOn []string
	// ServiceRunning is false when the package has a service that is not running now.
	ServiceRunning bool
}

// EnsurePackageParams asks the agent to make one package installed at Spec.Version, with its
// configs, sysctls and service as specified. It is the one activity for install, upgrade and
// drift repair: the agent compares and acts only where the host differs.
type EnsurePackageParams struct {
	Spec PackageSpec
}

// EnsureAction says what EnsurePackage did.
type EnsureAction string

const (
	EnsureNone      EnsureAction = "None"      // already at the spec: nothing changed
	EnsureInstalled EnsureAction = "Installed" // was absent
	EnsureUpgraded  EnsureAction = "Upgraded"  // another version was installed (either direction)
	EnsureRepaired  EnsureAction = "Repaired"  // same version, drift fixed (see Repairs)
)

// EnsurePackageResult reports what changed.
type EnsurePackageResult struct {
	Action          EnsureAction
	PreviousVersion string
	// Repairs says in words what drift was fixed, e.g. "restarted stopped service kubelet",
	// "rewrote /etc/kok/kubelet.conf (content differed)". The workflow records them as Events.
	Repairs        []string
	RebootRequired bool
}

// RemovePackageParams asks the agent to stop and remove one package; removing an absent package
// succeeds with Changed false.
type RemovePackageParams struct {
	Name string
	// Purge are directories (absolute, as seen from the host root, under /var/lib/kok/ or
	// /etc/kok/) deleted after the package is gone: the data a package's service wrote, such as
	// a deleted cluster's etcd data. Absent paths are fine.
	Purge []string
}

// RemovePackageResult reports whether anything was removed.
type RemovePackageResult struct {
	Changed bool
	Version string
}

// CheckHealthParams asks for one package's health check (or, without one, its service state).
type CheckHealthParams struct {
	Name string
	// Wait: keep checking (heartbeating) until healthy, the probe's failure threshold is
	// exhausted, or the activity's timeout ends. Without Wait, check once.
	Wait bool
}

// CheckHealthResult is the verdict; Message says why when unhealthy.
type CheckHealthResult struct {
	Healthy bool
	Message string
}

// Application error types the workflow handles. They fall in two classes, and a workflow must
// tell them apart, because an absent agent or a flaky artifact server is not a failure:
//
//   - Permanent, non-retryable: ErrTypeChecksumMismatch, ErrTypeBadSpec, ErrTypeInstallFailed
//     (and ErrTypeNotInstalled, an answer about the host rather than a failure). Retrying the
//     same spec gives the same result; only a new spec (or a human) changes it, so a workflow
//     may remember them as failed for that spec.
//   - Transient, "wait and try again": ErrTypeArtifactUnavailable (retryable, so Temporal's retry
//     policy already repeats it), and every timeout (ScheduleToStart: no agent polls the host's
//     queue; StartToClose or Heartbeat: the agent died or lost Temporal mid-activity). Activities
//     are idempotent and a change under way is recorded as pending on the host, so the next
//     attempt resumes it. A workflow waits with backoff and must not record a failure.
//
// Any other error (an I/O error on the host, say) is retryable and, when retries run out,
// should be treated as transient too.
const (
	ErrTypeChecksumMismatch = "ChecksumMismatch" // artifact digest differs from the spec: nothing changed
	ErrTypeBadSpec          = "BadSpec"          // the spec cannot be applied (unknown installer, bad path, artifact URL answers 404 or 403)
	ErrTypeInstallFailed    = "InstallFailed"    // install/upgrade failed; the previous version is still installed and running
	ErrTypeNotInstalled     = "NotInstalled"     // asked about a package the host does not have

	// ErrTypeArtifactUnavailable: the artifact could not be fetched for a reason that heals by
	// itself (HTTP 5xx or 429, connection refused or reset, DNS failure, timeout). Nothing on the
	// host was changed. Retryable: wait and try again.
	ErrTypeArtifactUnavailable = "ArtifactUnavailable"
)

// PermanentError reports whether an application error of type errType means the spec cannot
// be applied as it is (retrying will not help), as opposed to "wait and try again".
func PermanentError(errType string) bool {
	switch errType {
	case ErrTypeChecksumMismatch, ErrTypeBadSpec, ErrTypeInstallFailed:
		return true
	}
	return false
}

// Package types and installers, as the API spells them.
const (
	TypeComponent     = "Component"
	TypeKernelPatch   = "KernelPatch"
	TypeSystemSetting = "SystemSetting"

	InstallerLocal = "local"
	InstallerDeb   = "deb"
	InstallerRPM   = "rpm"

	RestartAlways    = "Always"
	RestartOnFailure = "OnFailure"
)

// FactsResult describes a host.
type FactsResult struct {
	Host string
	// Address is the host's service address (kok-agent --address).
	Address   string
	OS        string // PRETTY_NAME from os-release, e.g. "Debian GNU/Linux 12 (bookworm)"
	OSID      string // ID from os-release, e.g. "debian"
	Kernel    string // uname release
	Arch      string // GOARCH naming, e.g. "amd64"
	Simulated bool
	// BootID changes with every boot (the kernel's boot_id; on a simulated host, its boot
	// count), so a workflow can tell that a reboot it asked for has happened.
	BootID string
	// Installed lists the packages the agent has installed, sorted by name.
	Installed []InstalledPackage
}

// ServiceAction is what ControlService does to a package's service.
type ServiceAction string

const (
	ServiceStart   ServiceAction = "Start"
	ServiceStop    ServiceAction = "Stop"
	ServiceRestart ServiceAction = "Restart"
)

// ControlServiceParams names an installed package and what to do to its service.
type ControlServiceParams struct {
	Package string
	Action  ServiceAction
}

// ControlServiceResult says whether anything changed and whether the service runs now.
type ControlServiceResult struct {
	Changed bool
	Running bool
}
