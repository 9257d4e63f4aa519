package host

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"

	"kok.dev/internal/agent/fetch"
	"kok.dev/internal/agent/probe"
)

var (
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	versionRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	sysctlRE   = regexp.MustCompile(`^[a-z0-9_]+([./][-a-z0-9_]+){0,15}$`)
	envNameRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// normalize fills the defaults the API would have: type Component, installer local, service
// name = package name, restart policy Always, config mode 0644.
func normalize(spec hostapi.PackageSpec) hostapi.PackageSpec {
	if spec.Type == "" {
		spec.Type = hostapi.TypeComponent
	}
	if spec.Installer == "" {
		spec.Installer = hostapi.InstallerLocal
	}
	if spec.Service != nil {
		svc := *spec.Service
		if svc.Name == "" {
			svc.Name = spec.Name
		}
		if svc.RestartPolicy == "" {
			svc.RestartPolicy = hostapi.RestartAlways
		}
		spec.Service = &svc
	}
	if len(spec.ConfigFiles) > 0 {
		files := make([]hostapi.ConfigFile, len(spec.ConfigFiles))
		for i, f := range spec.ConfigFiles {
			// Mode 0 is the Go zero value, not a request for an unreadable file: the API
			// defaults mode to 0644, and so does the agent.
			if f.Mode == 0 {
				f.Mode = 0o644
			}
			files[i] = f
		}
		spec.ConfigFiles = files
	}
	return spec
}

// validate says everything wrong with a normalized spec, naming the fields.
func validate(spec hostapi.PackageSpec) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !dnsLabelRE.MatchString(spec.Name) || len(spec.Name) > 63 {
		bad("package name %q must be a DNS label", spec.Name)
	}
	if !versionRE.MatchString(spec.Version) || len(spec.Version) > 128 {
		bad("version %q must be lowercase letters, digits, '-' and '.'", spec.Version)
	}
	switch spec.Type {
	case hostapi.TypeComponent, hostapi.TypeKernelPatch, hostapi.TypeSystemSetting:
	default:
		bad("type %q must be Component, KernelPatch or SystemSetting", spec.Type)
	}
	switch spec.Installer {
	case hostapi.InstallerLocal, hostapi.InstallerDeb, hostapi.InstallerRPM:
	default:
		bad("installer %q must be local, deb or rpm", spec.Installer)
	}
	if spec.Type != hostapi.TypeSystemSetting {
		if u, err := url.Parse(spec.ArtifactURL); err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
			bad("artifact URL %q must be an http, https or file URL", spec.ArtifactURL)
		}
		if !fetch.ValidDigest(spec.SHA256) {
			bad("artifact sha256 %q must be 64 lowercase hex characters", spec.SHA256)
		}
	} else if len(spec.Sysctls) == 0 && len(spec.ConfigFiles) == 0 {
		bad("a SystemSetting must set sysctls or config files")
	}
	for _, d := range spec.DependsOn {
		if d == spec.Name {
			bad("dependsOn names the package itself")
		}
	}
	seen := map[string]bool{}
	for _, f := range spec.ConfigFiles {
		if err := checkHostPath(f.Path); err != nil {
			bad("config file: %v", err)
		}
		if seen[f.Path] {
			bad("config file %s is listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode > 0o777 {
			bad("config file %s: mode %#o has more than permission bits", f.Path, f.Mode)
		}
	}
	for k, v := range spec.Sysctls {
		if !sysctlRE.MatchString(k) {
			bad("sysctl %q is not a kernel parameter name", k)
		}
		if strings.ContainsAny(v, "\n\r") {
			bad("sysctl %s: value must be one line", k)
		}
	}
	if s := spec.Service; s != nil {
		if !dnsLabelRE.MatchString(s.Name) {
			bad("service name %q must be a DNS label", s.Name)
		}
		if len(s.Command) == 0 || s.Command[0] == "" {
			bad("service %s has no command", s.Name)
		}
		if s.RestartPolicy != hostapi.RestartAlways && s.RestartPolicy != hostapi.RestartOnFailure {
			bad("service %s: restart policy %q must be Always or OnFailure", s.Name, s.RestartPolicy)
		}
		for k := range s.Env {
			if !envNameRE.MatchString(k) {
				bad("service %s: environment variable name %q is invalid", s.Name, k)
			}
		}
	}
	if h := spec.HealthCheck; h != nil {
		if err := probeSpec(*h, nil).Validate(); err != nil {
			bad("%v", err)
		}
		if h.PeriodSec < 0 || h.TimeoutSec < 0 || h.FailureThreshold < 0 || h.InitialDelaySec < 0 {
			bad("health check periods, timeouts and thresholds must not be negative")
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("package %s %s cannot be applied: %v", spec.Name, spec.Version, errors.Join(errs...)), hostapi.ErrTypeBadSpec, nil)
}

// checkHostPath accepts absolute, clean paths below the root.
func checkHostPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q must be absolute", p)
	}
	if path.Clean(p) != p || p == "/" {
		return fmt.Errorf("path %q must be clean (no '..', '.', '//' or trailing '/') and not the root", p)
	}
	return nil
}

// probeSpec turns a health check into a probe, expanding the agent's variables when r is set.
func probeSpec(h hostapi.ProbeSpec, r interface{ Replace(string) string }) probe.Spec {
	expand := func(s string) string {
		if r == nil {
			return s
		}
		return r.Replace(s)
	}
	p := probe.Spec{
		HTTPURL:            expand(h.HTTPURL),
		ExpectStatus:       h.ExpectStatus,
		InsecureSkipVerify: h.InsecureSkipVerify,
		TCPAddress:         expand(h.TCPAddress),
	}
	for _, c := range h.Exec {
		p.Exec = append(p.Exec, expand(c))
	}
	return p
}
