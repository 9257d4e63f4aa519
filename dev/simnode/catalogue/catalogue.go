package catalogue

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/internal/agent/fetch"
)

// Versions of each simulated package, oldest first.
var Versions = map[string][]string{
	"container-runtime":     {"1.7.0", "1.7.1"},
	"kubelet":               {"1.37.1", "1.37.2"},
	"log-collector":         {"1.0.0", "1.1.0"},
	"node-problem-detector": {"0.8.19", "0.8.20"},
}

// KubeconfigPath is where, under a simulated host's root, the kubelet package expects the
// kubeconfig of its cluster; whoever provisions the host writes it there.
const KubeconfigPath = "/etc/kubernetes/kubelet.kubeconfig"

// probe is the health check of every simulated package: its program's probe subcommand on its
// socket, every second, up to 30 times (a kubelet may wait that long for its API server).
func probe(program, socket string) *kokv1.Probe {
	return &kokv1.Probe{
		Exec:             &kokv1.ExecProbe{Command: []string{"${KOK_PACKAGE_DIR}/bin/" + program, "probe", "--socket", socket}},
		PeriodSeconds:    1,
		TimeoutSeconds:   1,
		FailureThreshold: 30,
	}
}

func socket(name string) string { return "${KOK_ROOT}/run/kok-sim/" + name + ".sock" }

// spec describes one package version; artifact fields are filled in by Build.
func spec(pkg, version string) kokv1.MachinePackageVersionSpec {
	s := kokv1.MachinePackageVersionSpec{
		Package:   pkg,
		Version:   version,
		Type:      kokv1.PackageComponent,
		Installer: kokv1.InstallerLocal,
	}
	nodeDaemon := func(config string) {
		args := []string{"--socket", socket(pkg), "--version", version}
		if config != "" {
			args = append(args, "--config", "${KOK_ROOT}"+config)
		}
		s.Service = &kokv1.Service{Name: pkg, Command: []string{"bin/kok-sim-node", pkg}, Args: args, RestartPolicy: kokv1.RestartAlways}
		s.HealthCheck = probe("kok-sim-node", socket(pkg))
	}
	switch pkg {
	case "container-runtime":
		nodeDaemon("/etc/kok-sim/container-runtime.toml")
		s.ConfigFiles = []kokv1.ConfigFile{{
			Path:    "/etc/kok-sim/container-runtime.toml",
			Content: "# Simulated container runtime; kwok runs the pods.\nversion = 2\nstate = \"/var/lib/kok-sim/containers\"\n",
			Mode:    ptr.To[int32](0o644),
		}}
		s.Sysctls = map[string]string{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}
	case "kubelet":
		s.DependsOn = []string{"container-runtime"}
		s.Service = &kokv1.Service{
			Name:    "kubelet",
			Command: []string{"bin/kok-sim-kubelet"},
			Args: []string{
				"--kubeconfig", "${KOK_ROOT}" + KubeconfigPath,
				"--node-name", "${KOK_HOST}",
				"--version", "v" + version,
				"--health-socket", socket("kubelet"),
			},
			RestartPolicy: kokv1.RestartAlways,
		}
		s.HealthCheck = probe("kok-sim-kubelet", socket("kubelet"))
	case "log-collector":
		s.DependsOn = []string{"kubelet"}
		nodeDaemon("/etc/kok-sim/log-collector.yaml")
		s.ConfigFiles = []kokv1.ConfigFile{{
			Path:    "/etc/kok-sim/log-collector.yaml",
			Content: "# Simulated log collector.\nsources:\n- /var/log/kok\n",
			Mode:    ptr.To[int32](0o644),
		}}
	case "node-problem-detector":
		s.DependsOn = []string{"kubelet"}
		nodeDaemon("")
	}
	return s
}

// programOf is the binary a package ships.
func programOf(pkg string) string {
	if pkg == "kubelet" {
		return "kok-sim-kubelet"
	}
	return "kok-sim-node"
}

// Build compiles the simulated node programs, writes one artifact per package version into
// outDir and returns the catalogue. Artifact URLs are baseURL/<file>; an empty baseURL means
// file:// URLs of outDir.
func Build(outDir, baseURL string) ([]kokv1.MachinePackageVersion, error) {
	outDir, err := filepath.Abs(outDir)
	if err != nil {
		return nil, err
	}
	binDir := filepath.Join(outDir, ".bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", binDir, err)
	}
	if err := buildPrograms(binDir); err != nil {
		return nil, err
	}
	if baseURL == "" {
		baseURL = "file://" + outDir
	}
	baseURL = strings.TrimSuffix(baseURL, "/")

	var out []kokv1.MachinePackageVersion
	for _, pkg := range []string{"container-runtime", "kubelet", "log-collector", "node-problem-detector"} {
		for _, version := range Versions[pkg] {
			file := pkg + "-" + version + ".tar.gz"
			digest, err := pack(filepath.Join(outDir, file), filepath.Join(binDir, programOf(pkg)), version)
			if err != nil {
				return nil, fmt.Errorf("pack %s %s: %w", pkg, version, err)
			}
			s := spec(pkg, version)
			s.Artifact = &kokv1.Artifact{URL: baseURL + "/" + file, SHA256: digest}
			out = append(out, kokv1.MachinePackageVersion{
				TypeMeta:   metav1.TypeMeta{APIVersion: kokv1.SchemeGroupVersion.String(), Kind: "MachinePackageVersion"},
				ObjectMeta: metav1.ObjectMeta{Name: pkg + "-" + version},
				Spec:       s,
			})
		}
	}
	return out, nil
}

// buildPrograms compiles the programs as static binaries; the Go build cache makes this quick
// when nothing changed.
func buildPrograms(binDir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", binDir+string(filepath.Separator),
		"kok.dev/cmd/kok-sim-kubelet", "kok.dev/cmd/kok-sim-node")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the simulated node programs: %w\n%s", err, out)
	}
	return nil
}

// moduleRoot finds kok's go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module kok.dev\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("building the node packages needs kok's source: run it inside the repository")
		}
		dir = parent
	}
}

// epoch is every artifact entry's timestamp, so that equal inputs give equal digests.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pack writes the artifact of one package version (bin/<program> and VERSION) unless the file
// there already holds exactly these inputs, and returns its digest.
func pack(path, program, version string) (string, error) {
	bin, err := os.ReadFile(program)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(append(bin, 0), version...))
	inputs := hex.EncodeToString(sum[:])
	stamp := path + ".inputs"
	if prev, err := os.ReadFile(stamp); err == nil {
		if fields := strings.Fields(string(prev)); len(fields) == 2 && fields[0] == inputs {
			if digest, err := fetch.SHA256File(path); err == nil && digest == fields[1] {
				return digest, nil
			}
		}
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), ".pack-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	gz, err := gzip.NewWriterLevel(io.MultiWriter(tmp, h), gzip.BestSpeed)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(gz)
	for _, e := range []struct {
		name string
		mode int64
		body []byte
	}{
		{"bin/", 0o755, nil},
		{"bin/" + filepath.Base(program), 0o755, bin},
		{"VERSION", 0o644, []byte(version + "\n")},
	} {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if strings.HasSuffix(e.name, "/") {
			hdr.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(e.body); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	digest := hex.EncodeToString(h.Sum(nil))
	return digest, os.WriteFile(stamp, []byte(inputs+" "+digest+"\n"), 0o644)
}
