package clustercatalogue

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/internal/agent/fetch"
)

// Default ports the health checks probe. etcd's and kok-manager's are set by the default args
// below; the others are the components' own defaults. A provider that moves a component to
// another port (kube-apiserver follows Cluster spec.network.apiServerPort) rewrites the
// component's health check to match.
const (
	EtcdMetricsPort           = 2381
	KubeAPIServerPort         = 6443
	KubeControllerManagerPort = 10257
	KubeSchedulerPort         = 10259
	MachineOperatorHealthPort = 8081
)

// machineOperatorBinary is the program kok ships as the machine operator.
const machineOperatorBinary = "kok-manager"

// Every health check polls every 2 seconds and gives up after 30 failures: a kube-apiserver on a
// busy 2-core host can take most of a minute to serve /livez after a start, and an etcd member
// of a new 3-member cluster answers /health only once its peers are up.
const (
	probePeriodSeconds    = 2
	probeTimeoutSeconds   = 2
	probeFailureThreshold = 30
)

// kubeComponents are the components hack/k8s-bins builds, in the order they start in; a release
// lists them so, then the machine operator.
var kubeComponents = []kokv1.ControlPlaneComponentName{
	kokv1.ComponentEtcd,
	kokv1.ComponentKubeAPIServer,
	kokv1.ComponentKubeControllerManager,
	kokv1.ComponentKubeScheduler,
}

// Binary is where a component's program lies inside its artifact (and so inside the directory
// the local installer unpacks it to), such as bin/kube-apiserver.
func Binary(c kokv1.ControlPlaneComponentName) string {
	if c == kokv1.ComponentMachineOperator {
		return "bin/" + machineOperatorBinary
	}
	return "bin/" + string(c)
}

// defaults are a component's flags and health check that hold for every release and provider.
func defaults(c kokv1.ControlPlaneComponentName) (map[string]string, *kokv1.Probe) {
	probe := func(url string) *kokv1.Probe {
		return &kokv1.Probe{
			HTTP: &kokv1.HTTPProbe{
				URL:                url,
				ExpectStatus:       200,
				InsecureSkipVerify: strings.HasPrefix(url, "https:"),
			},
			PeriodSeconds:    probePeriodSeconds,
			TimeoutSeconds:   probeTimeoutSeconds,
			FailureThreshold: probeFailureThreshold,
		}
	}
	switch c {
	case kokv1.ComponentEtcd:
		return map[string]string{
			// Plain-HTTP /health on loopback: the client port demands a client certificate,
			// which the agent does not hold.
			"listen-metrics-urls":   fmt.Sprintf("http://127.0.0.1:%d", EtcdMetricsPort),
			"client-cert-auth":      "true",
			"peer-client-cert-auth": "true",
		}, probe(fmt.Sprintf("http://127.0.0.1:%d/health", EtcdMetricsPort))
	case kokv1.ComponentKubeAPIServer:
		return map[string]string{
			"authorization-mode":       "Node,RBAC",
			"enable-admission-plugins": "NodeRestriction",
			"allow-privileged":         "true",
			// /livez is readable anonymously (system:public-info-viewer); the probe relies on it.
			"anonymous-auth":                  "true",
			"kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
			"profiling":                       "false",
		}, probe(fmt.Sprintf("https://127.0.0.1:%d/livez", KubeAPIServerPort))
	case kokv1.ComponentKubeControllerManager:
		return map[string]string{
			"leader-elect":                    "true",
			"use-service-account-credentials": "true",
			"profiling":                       "false",
		}, probe(fmt.Sprintf("https://127.0.0.1:%d/healthz", KubeControllerManagerPort))
	case kokv1.ComponentKubeScheduler:
		return map[string]string{
			"leader-elect": "true",
			"profiling":    "false",
		}, probe(fmt.Sprintf("https://127.0.0.1:%d/healthz", KubeSchedulerPort))
	default: // machine operator
		return map[string]string{
			"leader-elect":              "true",
			"health-probe-bind-address": fmt.Sprintf(":%d", MachineOperatorHealthPort),
		}, probe(fmt.Sprintf("http://127.0.0.1:%d/healthz", MachineOperatorHealthPort))
	}
}

var kubeVersionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

// Build packs, for each Kubernetes version in binDirs (version such as v1.37.2 -> directory
// holding the binaries hack/k8s-bins/build.sh built for it), one artifact per component into
// outDir/<version>/, and managerBin once into outDir as every release's machine operator. It
// returns one ClusterPackageVersion per version, named after it, oldest first, with file:// URLs.
func Build(outDir string, binDirs map[string]string, managerBin string) ([]kokv1.ClusterPackageVersion, error) {
	if len(binDirs) == 0 {
		return nil, fmt.Errorf("no Kubernetes versions given")
	}
	outDir, err := filepath.Abs(outDir)
	if err != nil {
		return nil, err
	}
	kubes := make([]string, 0, len(binDirs))
	parsed := map[string]*version.Version{}
	for v := range binDirs {
		pv, err := version.ParseSemantic(v)
		if err != nil || !kubeVersionRE.MatchString(v) {
			return nil, fmt.Errorf("kubernetes version %q: want vMAJOR.MINOR.PATCH, such as v1.37.2", v)
		}
		kubes = append(kubes, v)
		parsed[v] = pv
	}
	sort.Slice(kubes, func(i, j int) bool { return parsed[kubes[i]].LessThan(parsed[kubes[j]]) })
	// Every binary is checked before anything is packed: a missing one or the wrong release
	// fails in seconds, not after minutes of packing.
	versions := map[string]map[kokv1.ControlPlaneComponentName]string{}
	for _, kube := range kubes {
		v, err := componentVersions(kube, binDirs[kube])
		if err != nil {
			return nil, fmt.Errorf("kubernetes %s: %w", kube, err)
		}
		versions[kube] = v
	}

	operator, err := packOperator(outDir, managerBin)
	if err != nil {
		return nil, err
	}
	var out []kokv1.ClusterPackageVersion
	for _, kube := range kubes {
		cpv, err := buildRelease(outDir, kube, binDirs[kube], versions[kube], operator)
		if err != nil {
			return nil, fmt.Errorf("kubernetes %s: %w", kube, err)
		}
		out = append(out, cpv)
	}
	return out, nil
}

// componentVersions finds each Kubernetes component of release kube in binDir and the version
// it reports, which must be kube itself for all but etcd.
func componentVersions(kube, binDir string) (map[kokv1.ControlPlaneComponentName]string, error) {
	versions := map[kokv1.ControlPlaneComponentName]string{}
	for _, c := range kubeComponents {
		bin := filepath.Join(binDir, string(c))
		if err := checkExecutable(bin); err != nil {
			return nil, fmt.Errorf("%w: run `make k8s-bins KUBE_VERSIONS=%s` (builds it from source, about 12 minutes the first time)", err, kube)
		}
		v, err := reportedVersion(bin)
		if err != nil {
			return nil, err
		}
		if c != kokv1.ComponentEtcd && v != kube {
			return nil, fmt.Errorf("%s reports version %s, not %s: %s holds another release", bin, v, kube, binDir)
		}
		versions[c] = v
	}
	return versions, nil
}

// buildRelease packs one release's Kubernetes components and describes the release.
func buildRelease(outDir, kube, binDir string, versions map[kokv1.ControlPlaneComponentName]string, operator kokv1.ControlPlaneComponent) (kokv1.ClusterPackageVersion, error) {
	cpv := kokv1.ClusterPackageVersion{
		TypeMeta:   metav1.TypeMeta{APIVersion: kokv1.SchemeGroupVersion.String(), Kind: "ClusterPackageVersion"},
		ObjectMeta: metav1.ObjectMeta{Name: kube},
		Spec:       kokv1.ClusterPackageVersionSpec{KubernetesVersion: kube},
	}
	dir := filepath.Join(outDir, kube)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cpv, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, c := range kubeComponents {
		v := versions[c]
		comp, err := packComponent(filepath.Join(dir, fmt.Sprintf("%s-%s.tar.gz", c, v)), c, v, filepath.Join(binDir, string(c)))
		if err != nil {
			return cpv, err
		}
		cpv.Spec.Components = append(cpv.Spec.Components, comp)
	}
	cpv.Spec.Components = append(cpv.Spec.Components, operator)
	return cpv, nil
}

// packOperator packs kok-manager once; every release shares the artifact.
func packOperator(outDir, managerBin string) (kokv1.ControlPlaneComponent, error) {
	if err := checkExecutable(managerBin); err != nil {
		return kokv1.ControlPlaneComponent{}, fmt.Errorf("machine operator: %w: run `go build -o bin/ ./cmd/kok-manager`", err)
	}
	v, err := operatorVersion(managerBin)
	if err != nil {
		return kokv1.ControlPlaneComponent{}, err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return kokv1.ControlPlaneComponent{}, fmt.Errorf("create %s: %w", outDir, err)
	}
	path := filepath.Join(outDir, fmt.Sprintf("%s-%s.tar.gz", kokv1.ComponentMachineOperator, v))
	return packComponent(path, kokv1.ComponentMachineOperator, v, managerBin)
}

// packComponent writes the artifact of one component and describes the component.
func packComponent(path string, c kokv1.ControlPlaneComponentName, v, bin string) (kokv1.ControlPlaneComponent, error) {
	if err := pack(path, Binary(c), bin); err != nil {
		return kokv1.ControlPlaneComponent{}, fmt.Errorf("pack %s %s: %w", c, v, err)
	}
	digest, err := fetch.SHA256File(path)
	if err != nil {
		return kokv1.ControlPlaneComponent{}, fmt.Errorf("checksum of %s: %w", path, err)
	}
	args, health := defaults(c)
	return kokv1.ControlPlaneComponent{
		Name:        c,
		Version:     v,
		Artifact:    &kokv1.Artifact{URL: "file://" + path, SHA256: digest},
		Args:        args,
		HealthCheck: health,
	}, nil
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s is missing", path)
	}
	if !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// versionLineRE finds the version in `etcd --version` ("etcd Version: 3.7.0") and in
// `kube-apiserver --version` ("Kubernetes v1.37.2").
var versionLineRE = regexp.MustCompile(`(?m)^(?:etcd Version: |Kubernetes )(v?[0-9]+\.[0-9]+\.[0-9]+)\s*$`)

// reportedVersion asks the binary itself: that is the version its /version endpoint reports and
// the one health checks compare after an upgrade.
func reportedVersion(bin string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w\n%s", bin, err, out)
	}
	m := versionLineRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version printed no version: %q", bin, out)
	}
	return string(m[1]), nil
}

// apiVersionRE is the API's pattern for a component version.
var apiVersionRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// operatorVersion is kok's version as `kok version` reports it (the main module's version in the
// build info). A development build has none, so its version names its bits instead:
// v0.0.0-dev.<first 12 hex digits of the binary's sha256>. A rebuild with other code is then
// another version, as immutable catalogue entries need.
func operatorVersion(bin string) (string, error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("machine operator %s has no Go build info: %w", bin, err)
	}
	if v := bi.Main.Version; v != "" && len(v) <= 128 && apiVersionRE.MatchString(v) {
		return v, nil
	}
	digest, err := fetch.SHA256File(bin)
	if err != nil {
		return "", fmt.Errorf("checksum of %s: %w", bin, err)
	}
	return "v0.0.0-dev." + digest[:12], nil
}
