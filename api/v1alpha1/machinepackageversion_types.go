package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PackageType is what a node package changes on the host.
// +kubebuilder:validation:Enum=Component;KernelPatch;SystemSetting
type PackageType string

const (
	// PackageComponent is a program (containerd, kubelet, ...) that usually runs as a service.
	PackageComponent PackageType = "Component"
	// PackageKernelPatch changes the kernel; it usually sets rebootRequired.
	PackageKernelPatch PackageType = "KernelPatch"
	// PackageSystemSetting only writes configuration (sysctls, config files); it has no artifact.
	PackageSystemSetting PackageType = "SystemSetting"
)

// Installer is how the agent installs a package's artifact.
// +kubebuilder:validation:Enum=local;deb;rpm
type Installer string

const (
	// InstallerLocal unpacks the artifact into a versioned directory under the host root and
	// runs its service under the agent's supervisor.
	InstallerLocal Installer = "local"
	// InstallerDeb installs the artifact with dpkg.
	InstallerDeb Installer = "deb"
	// InstallerRPM installs the artifact with rpm.
	InstallerRPM Installer = "rpm"
)

// RestartPolicy says when the agent restarts a package's service.
// +kubebuilder:validation:Enum=Always;OnFailure
type RestartPolicy string

const (
	// RestartAlways restarts the service whenever it exits.
	RestartAlways RestartPolicy = "Always"
	// RestartOnFailure restarts the service only when it exits with a non-zero status.
	RestartOnFailure RestartPolicy = "OnFailure"
)

// MachinePackageVersionSpec is one released version of one node package. It is immutable.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable: package versions are immutable, create a new MachinePackageVersion instead"
// +kubebuilder:validation:XValidation:rule="(has(self.type) && self.type == 'SystemSetting') || has(self.artifact)",message="artifact is required unless type is SystemSetting",fieldPath=".artifact"
// +kubebuilder:validation:XValidation:rule="!has(self.type) || self.type != 'SystemSetting' || has(self.sysctls) || has(self.configFiles)",message="a SystemSetting must set sysctls or configFiles"
// +kubebuilder:validation:XValidation:rule="!has(self.dependsOn) || !(self.__package__ in self.dependsOn)",message="dependsOn must not name the package itself",fieldPath=".dependsOn"
type MachinePackageVersionSpec struct {
	// package is the package (component) name, a DNS label such as containerd or kubelet.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Package string `json:"package"`
	// version is the package version: lowercase letters, digits, '-' and '.', such as 1.7.2 or
	// v1.37.2, at most 128 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Version string `json:"version"`
	// type is what the package changes: Component, KernelPatch or SystemSetting. Default
	// Component.
	// +optional
	// +kubebuilder:default=Component
	Type PackageType `json:"type,omitempty"`
	// installer is how the artifact is installed: local, deb or rpm. Default local.
	// +optional
	// +kubebuilder:default=local
	Installer Installer `json:"installer,omitempty"`
	// artifact is the file to install; required unless type is SystemSetting.
	// +optional
	Artifact *Artifact `json:"artifact,omitempty"`
	// dependsOn names packages that must be installed and healthy on the node before this one
	// is installed or upgraded (and that are removed after it). At most 32 distinct names.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	DependsOn []string `json:"dependsOn,omitempty"`
	// configFiles are files the agent writes on the host, one per path. At most 32.
	// +optional
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MaxItems=32
	ConfigFiles []ConfigFile `json:"configFiles,omitempty"`
	// service is the long-running process the agent supervises, if the package has one.
	// +optional
	Service *Service `json:"service,omitempty"`
	// healthCheck tells when the package is healthy. Without it a package with a service is
	// healthy while the service runs, and one without is healthy once installed.
	// +optional
	HealthCheck *Probe `json:"healthCheck,omitempty"`
	// sysctls are kernel parameters to set, name (such as net.ipv4.ip_forward) to value. At
	// most 128.
	// +optional
	// +kubebuilder:validation:MaxProperties=128
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[a-z0-9_]+([./][-a-z0-9_]+){0,15}$') && size(k) <= 253)",message="sysctls keys must be kernel parameter names, such as net.ipv4.ip_forward"
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// rebootRequired says the host must reboot for the package to take effect; the reboot is
	// rate-limited like any other disruptive operation. Default false.
	// +optional
	RebootRequired bool `json:"rebootRequired,omitempty"`
}

// ConfigFile is one file the agent writes on the host.
type ConfigFile struct {
	// path is where the file goes: absolute, without '..' segments, at most 4096 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="configFiles[].path must be absolute"
	// +kubebuilder:validation:XValidation:rule="!self.contains('/../') && !self.endsWith('/..')",message="configFiles[].path must not contain '..' segments"
	Path string `json:"path"`
	// content is the file's content, at most 256 KiB.
	// +optional
	// +kubebuilder:validation:MaxLength=262144
	Content string `json:"content,omitempty"`
	// mode is the file's permission bits as a decimal number, 0 to 511 (0777 octal); in YAML
	// an octal literal such as 0644 works. Default 420 (0644).
	// +optional
	// +kubebuilder:default=420
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=511
	Mode *int32 `json:"mode,omitempty"`
}

// Service is the long-running process of a package.
type Service struct {
	// name is the service's name on the host, a DNS label; default the package name.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`
	// command is the program and its fixed arguments, run without a shell. For the local
	// installer a relative program path is resolved inside the package's directory. 1 to 64
	// items of at most 4096 characters.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command"`
	// args are appended to command. At most 256 items of at most 4096 characters.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=4096
	Args []string `json:"args,omitempty"`
	// env is the service's environment, one entry per name. At most 128.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=128
	Env []EnvVar `json:"env,omitempty"`
	// restartPolicy is when the agent restarts the service: Always or OnFailure. Default Always.
	// +optional
	// +kubebuilder:default=Always
	RestartPolicy RestartPolicy `json:"restartPolicy,omitempty"`
}

// EnvVar is one environment variable.
type EnvVar struct {
	// name is the variable's name: letters, digits and '_', not starting with a digit.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	Name string `json:"name"`
	// value is the variable's value, at most 32768 characters.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	Value string `json:"value,omitempty"`
}

// MachinePackageVersionStatus reports whether the catalogue entry can be used.
type MachinePackageVersionStatus struct {
	// phase is Pending until the artifact is checked, then Available or Invalid.
	// +optional
	Phase PackageVersionPhase `json:"phase,omitempty"`
	// conditions are the latest observations, one per type: Ready (artifact verified).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=32
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// observedGeneration is the metadata.generation that the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// MachinePackageVersion is one released version of one node package: its artifact and checksum,
// install method, dependencies, config files, service and health check. Its name is
// <package>-<version>, so a Machine's {name, version} finds exactly one. It never changes once
// created; a Machine upgrades or rolls back by naming another version.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=mpv,categories=kok
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Package",type=string,JSONPath=`.spec.package`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.spec.version`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Installer",type=string,JSONPath=`.spec.installer`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name == self.spec.__package__ + '-' + self.spec.version",messageExpression="'metadata.name must be ' + self.spec.__package__ + '-' + self.spec.version + ' (spec.package-spec.version)'"
type MachinePackageVersion struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the released package; immutable.
	// +required
	Spec MachinePackageVersionSpec `json:"spec"`
	// status is written by kok.
	// +optional
	Status MachinePackageVersionStatus `json:"status,omitempty"`
}

// MachinePackageVersionList is a list of MachinePackageVersions.
// +kubebuilder:object:root=true
type MachinePackageVersionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the listed MachinePackageVersions.
	Items []MachinePackageVersion `json:"items"`
}
