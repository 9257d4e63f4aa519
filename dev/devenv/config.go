package devenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"kok.dev/activities/provider/process"
)

// Defaults of `kok dev up`.
const (
	DefaultStateDir              = ".kok/dev"
	DefaultK8sBins               = "bin/k8s/v1.37.2"
	DefaultCRDDir                = "crds"
	DefaultNodePackages          = "bin/packages"
	DefaultKwokBin               = "bin/tools/kwok-v0.8.0"
	DefaultKwokStages            = "deploy/kwok/stages.yaml"
	DefaultTemporalPort          = 7233
	DefaultUIPort                = 8233
	DefaultCodecPort             = 8234
	DefaultManagerProbePort      = 8235
	DefaultManagerMetricsPort    = 8236
	DefaultAgentMetricsPort      = 8237
	DefaultKwokPort              = 8238
	DefaultEtcdPort              = 2379
	DefaultAPIServerPort         = 6443
	DefaultControllerManagerPort = 10257
	// DefaultDemoAPIServerPort is the demo cluster's API server port on its master's address.
	// Not 6443: the cluster's other ports derive from it (P+1 to P+6, process.PortsFor), and
	// with a non-standard port none of them is a port the meta cluster uses.
	DefaultDemoAPIServerPort = 16443
	DefaultMasters           = 1
	DefaultWorkers           = 3
	DefaultReadyTimeout      = 2 * time.Minute
	DefaultDemoTimeout       = 10 * time.Minute
	DefaultStopGrace         = 10 * time.Second

	// Namespace is the Temporal namespace kok uses.
	Namespace = "kok"
	// SystemNamespace is the meta cluster namespace of kok's own objects (leader election).
	SystemNamespace = "kok-system"
	// ManagerName names kok-manager in messages and its log file.
	ManagerName = "kok-manager"
	// AgentName names kok-agent, the program of every simulated host.
	AgentName = "kok-agent"
	// KwokName names kwok in messages and its log file.
	KwokName = "kwok"
	// DemoCluster is the business cluster `kok dev up` creates.
	DemoCluster = "demo"

	loopback = "127.0.0.1"
	// maxWorkers keeps every simulated host on its own loopback address (127.0.0.2 ...).
	maxWorkers = 200
)

// Config is everything `kok dev up` can be told.
type Config struct {
	// StateDir holds everything the system keeps between runs (see the package doc).
	StateDir string
	// K8sBins holds etcd, kube-apiserver and kube-controller-manager.
	K8sBins string
	// CRDDir holds the CRD manifests to install.
	CRDDir string
	// ManagerBin is the kok-manager binary; it is also packed as the demo cluster's machine
	// operator.
	ManagerBin string

	// Demo brings up the demo business cluster on simulated hosts; without it only Temporal,
	// the meta cluster and kok-manager run.
	Demo bool
	// Masters (1, 3 or 5) and Workers are the simulated hosts of the demo cluster.
	Masters, Workers int
	// AgentBin is the kok-agent binary every simulated host runs.
	AgentBin string
	// KwokBin runs kwok with KwokStages, which plays the pods of the demo cluster.
	KwokBin, KwokStages string
	// NodePackages holds catalogue.yaml and the artifacts of the simulated node packages, as
	// `make node-packages` writes them.
	NodePackages string
	// ClusterVersions are the Kubernetes releases of the control-plane catalogue, each built
	// beside K8sBins (bin/k8s/<version>). Empty means every release there.
	ClusterVersions []string
	// DemoVersion is the demo cluster's ClusterPackageVersion; empty means the oldest release,
	// so that there is one to upgrade to.
	DemoVersion string

	TemporalPort          int
	UIPort                int
	CodecPort             int
	EtcdPort              int
	APIServerPort         int
	ControllerManagerPort int
	ManagerProbePort      int
	ManagerMetricsPort    int
	// AgentMetricsPort is where each simulated host's agent serves /healthz, on the host's
	// own address.
	AgentMetricsPort int
	KwokPort         int
	// DemoAPIServerPort is the demo cluster's spec.network.apiServerPort.
	DemoAPIServerPort int

	// ReadyTimeout bounds the wait for each part to become ready.
	ReadyTimeout time.Duration
	// DemoTimeout bounds the creation of the demo cluster and of its nodes.
	DemoTimeout time.Duration
	// StopGrace is how long each child gets between SIGTERM and SIGKILL.
	StopGrace time.Duration

	// Progress receives one line per step; nil discards them.
	Progress io.Writer
}

// DefaultConfig returns the configuration `kok dev up` uses without flags.
func DefaultConfig() Config {
	return Config{
		StateDir:              DefaultStateDir,
		K8sBins:               DefaultK8sBins,
		CRDDir:                DefaultCRDDir,
		ManagerBin:            besideExecutable(ManagerName),
		Demo:                  true,
		Masters:               DefaultMasters,
		Workers:               DefaultWorkers,
		AgentBin:              besideExecutable(AgentName),
		KwokBin:               DefaultKwokBin,
		KwokStages:            DefaultKwokStages,
		NodePackages:          DefaultNodePackages,
		TemporalPort:          DefaultTemporalPort,
		UIPort:                DefaultUIPort,
		CodecPort:             DefaultCodecPort,
		EtcdPort:              DefaultEtcdPort,
		APIServerPort:         DefaultAPIServerPort,
		ControllerManagerPort: DefaultControllerManagerPort,
		ManagerProbePort:      DefaultManagerProbePort,
		ManagerMetricsPort:    DefaultManagerMetricsPort,
		AgentMetricsPort:      DefaultAgentMetricsPort,
		KwokPort:              DefaultKwokPort,
		DemoAPIServerPort:     DefaultDemoAPIServerPort,
		ReadyTimeout:          DefaultReadyTimeout,
		DemoTimeout:           DefaultDemoTimeout,
		StopGrace:             DefaultStopGrace,
	}
}

// DefaultManagerBin is kok-manager next to the running binary, where `make build` puts both.
func DefaultManagerBin() string { return besideExecutable(ManagerName) }

func besideExecutable(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return name
	}
	return filepath.Join(filepath.Dir(exe), name)
}

// port is one listener of the system, named after the flag that moves it.
type port struct {
	part, flag string
	ip         string
	number     int
}

func (c *Config) ports() []port {
	ports := []port{
		{"Temporal frontend", "--temporal-port", loopback, c.TemporalPort},
		{"Temporal Web UI", "--ui-port", loopback, c.UIPort},
		{"codec server", "--codec-port", loopback, c.CodecPort},
		{"etcd", "--etcd-port", loopback, c.EtcdPort},
		{"kube-apiserver", "--apiserver-port", loopback, c.APIServerPort},
		{"kube-controller-manager", "--controller-manager-port", loopback, c.ControllerManagerPort},
		{"kok-manager probes", "--manager-probe-port", loopback, c.ManagerProbePort},
		{"kok-manager metrics", "--manager-metrics-port", loopback, c.ManagerMetricsPort},
	}
	if !c.Demo {
		return ports
	}
	ports = append(ports, port{"kwok", "--kwok-port", loopback, c.KwokPort})
	for _, h := range c.hosts() {
		ports = append(ports, port{"kok-agent of " + h.Name, "--agent-metrics-port", h.Address, c.AgentMetricsPort})
		if h.Role != RoleMaster {
			continue
		}
		// Every port the demo cluster's components take on the master (process.PortsFor).
		p, err := process.PortsFor(c.DemoAPIServerPort)
		if err != nil {
			continue // complete reports it
		}
		for _, d := range []struct {
			what string
			n    int
		}{
			{"kube-apiserver", p.APIServer}, {"etcd client", p.EtcdClient}, {"etcd peer", p.EtcdPeer},
			{"etcd metrics", p.EtcdMetrics}, {"kube-controller-manager", p.ControllerManager},
			{"kube-scheduler", p.Scheduler}, {"machine operator", p.MachineOperator},
		} {
			ports = append(ports, port{"demo cluster's " + d.what + " on " + h.Name, "--demo-apiserver-port", h.Address, d.n})
		}
	}
	return ports
}

// versionRE is a Kubernetes release as hack/k8s-bins names its directories.
var versionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)

// complete checks the config and makes its paths absolute, since children run elsewhere.
func (c *Config) complete() error {
	paths := []struct {
		flag string
		path *string
	}{
		{"--state-dir", &c.StateDir}, {"--k8s-bins", &c.K8sBins}, {"--crds", &c.CRDDir}, {"--manager-bin", &c.ManagerBin},
	}
	if c.Demo {
		paths = append(paths, []struct {
			flag string
			path *string
		}{
			{"--agent-bin", &c.AgentBin}, {"--kwok-bin", &c.KwokBin}, {"--kwok-stages", &c.KwokStages}, {"--node-packages", &c.NodePackages},
		}...)
	}
	for _, p := range paths {
		if *p.path == "" {
			return fmt.Errorf("%s is empty", p.flag)
		}
		abs, err := filepath.Abs(*p.path)
		if err != nil {
			return fmt.Errorf("%s %s: %w", p.flag, *p.path, err)
		}
		*p.path = abs
	}
	used := map[string]string{}
	for _, p := range c.ports() {
		if p.number <= 0 || p.number > 65535 {
			return fmt.Errorf("%s %d: not a TCP port", p.flag, p.number)
		}
		key := net.JoinHostPort(p.ip, strconv.Itoa(p.number))
		if other, ok := used[key]; ok {
			return fmt.Errorf("%s %d: port already given to %s", p.flag, p.number, other)
		}
		used[key] = p.flag
	}
	if c.Demo {
		if err := c.completeDemo(); err != nil {
			return err
		}
	}
	if c.ReadyTimeout <= 0 {
		return errors.New("--ready-timeout must be positive")
	}
	if c.DemoTimeout <= 0 {
		c.DemoTimeout = DefaultDemoTimeout
	}
	if c.StopGrace <= 0 {
		c.StopGrace = DefaultStopGrace
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

func (c *Config) completeDemo() error {
	if c.Masters != 1 && c.Masters != 3 && c.Masters != 5 {
		return fmt.Errorf("--masters %d: a cluster has 1, 3 or 5 masters (etcd needs an odd number)", c.Masters)
	}
	if c.Workers < 1 || c.Workers > maxWorkers {
		return fmt.Errorf("--workers %d: give 1 to %d", c.Workers, maxWorkers)
	}
	if _, err := process.PortsFor(c.DemoAPIServerPort); err != nil {
		return fmt.Errorf("--demo-apiserver-port: %w", err)
	}
	if len(c.ClusterVersions) == 0 {
		found, err := filepath.Glob(filepath.Join(filepath.Dir(c.K8sBins), "v*.*.*"))
		if err != nil {
			return err
		}
		for _, dir := range found {
			if versionRE.MatchString(filepath.Base(dir)) {
				c.ClusterVersions = append(c.ClusterVersions, filepath.Base(dir))
			}
		}
		if len(c.ClusterVersions) == 0 {
			return fmt.Errorf("no Kubernetes releases beside %s for the demo cluster: run `make k8s-bins` (or pass --cluster-versions)", c.K8sBins)
		}
	}
	for _, v := range c.ClusterVersions {
		if !versionRE.MatchString(v) {
			return fmt.Errorf("--cluster-versions %q: want vMAJOR.MINOR.PATCH, such as v1.37.2", v)
		}
	}
	c.ClusterVersions = sortVersions(c.ClusterVersions)
	if c.DemoVersion == "" {
		c.DemoVersion = c.ClusterVersions[0]
	}
	for _, v := range c.ClusterVersions {
		if v == c.DemoVersion {
			return nil
		}
	}
	return fmt.Errorf("--demo-version %s is not one of --cluster-versions %v", c.DemoVersion, c.ClusterVersions)
}

// checkPortsFree fails fast, naming the part and its flag, instead of letting a child die on
// "address already in use" deep into the start.
func (c *Config) checkPortsFree() error {
	for _, p := range c.ports() {
		ln, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(p.number)))
		if err != nil {
			return fmt.Errorf("port %d on %s for the %s is in use (choose another with %s): %w", p.number, p.ip, p.part, p.flag, err)
		}
		_ = ln.Close()
	}
	return nil
}

func (c *Config) logFile(name string) string {
	return filepath.Join(c.StateDir, "logs", name+".log")
}

func hostPort(port int) string { return net.JoinHostPort(loopback, strconv.Itoa(port)) }

// DisplayPath shortens path to a relative one when it is under the working directory, as
// the lines a user copies from the terminal are.
func DisplayPath(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	rel, err := filepath.Rel(wd, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return path
	}
	return rel
}
