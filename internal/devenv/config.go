package devenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Defaults of `kok dev up`.
const (
	DefaultStateDir              = ".kok/dev"
	DefaultK8sBins               = "bin/k8s/v1.37.2"
	DefaultCRDDir                = "crds"
	DefaultTemporalPort          = 7233
	DefaultUIPort                = 8233
	DefaultCodecPort             = 8234
	DefaultManagerProbePort      = 8235
	DefaultManagerMetricsPort    = 8236
	DefaultEtcdPort              = 2379
	DefaultAPIServerPort         = 6443
	DefaultControllerManagerPort = 10257
	DefaultReadyTimeout          = 2 * time.Minute
	DefaultStopGrace             = 10 * time.Second

	// Namespace is the Temporal namespace kok uses.
	Namespace = "kok"
	// SystemNamespace is the meta cluster namespace of kok's own objects (leader election).
	SystemNamespace = "kok-system"
	// ManagerName names kok-manager in messages and its log file.
	ManagerName = "kok-manager"

	loopback = "127.0.0.1"
)

// Config is everything `kok dev up` can be told.
type Config struct {
	// StateDir holds everything the system keeps between runs (see the package doc).
	StateDir string
	// K8sBins holds etcd, kube-apiserver and kube-controller-manager.
	K8sBins string
	// CRDDir holds the CRD manifests to install.
	CRDDir string
	// ManagerBin is the kok-manager binary.
	ManagerBin string

	TemporalPort          int
	UIPort                int
	CodecPort             int
	EtcdPort              int
	APIServerPort         int
	ControllerManagerPort int
	ManagerProbePort      int
	ManagerMetricsPort    int

	// ReadyTimeout bounds the wait for each part to become ready.
	ReadyTimeout time.Duration
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
		ManagerBin:            DefaultManagerBin(),
		TemporalPort:          DefaultTemporalPort,
		UIPort:                DefaultUIPort,
		CodecPort:             DefaultCodecPort,
		EtcdPort:              DefaultEtcdPort,
		APIServerPort:         DefaultAPIServerPort,
		ControllerManagerPort: DefaultControllerManagerPort,
		ManagerProbePort:      DefaultManagerProbePort,
		ManagerMetricsPort:    DefaultManagerMetricsPort,
		ReadyTimeout:          DefaultReadyTimeout,
		StopGrace:             DefaultStopGrace,
	}
}

// DefaultManagerBin is kok-manager next to the running binary, where `make build` puts both.
func DefaultManagerBin() string {
	exe, err := os.Executable()
	if err != nil {
		return ManagerName
	}
	return filepath.Join(filepath.Dir(exe), ManagerName)
}

// port is one listener of the system, named after the flag that moves it.
type port struct {
	part, flag string
	number     int
}

func (c *Config) ports() []port {
	return []port{
		{"Temporal frontend", "--temporal-port", c.TemporalPort},
		{"Temporal Web UI", "--ui-port", c.UIPort},
		{"codec server", "--codec-port", c.CodecPort},
		{"etcd", "--etcd-port", c.EtcdPort},
		{"kube-apiserver", "--apiserver-port", c.APIServerPort},
		{"kube-controller-manager", "--controller-manager-port", c.ControllerManagerPort},
		{"kok-manager probes", "--manager-probe-port", c.ManagerProbePort},
		{"kok-manager metrics", "--manager-metrics-port", c.ManagerMetricsPort},
	}
}

// complete checks the config and makes its paths absolute, since children run elsewhere.
func (c *Config) complete() error {
	for _, p := range []struct {
		flag string
		path *string
	}{
		{"--state-dir", &c.StateDir}, {"--k8s-bins", &c.K8sBins}, {"--crds", &c.CRDDir}, {"--manager-bin", &c.ManagerBin},
	} {
		if *p.path == "" {
			return fmt.Errorf("%s is empty", p.flag)
		}
		abs, err := filepath.Abs(*p.path)
		if err != nil {
			return fmt.Errorf("%s %s: %w", p.flag, *p.path, err)
		}
		*p.path = abs
	}
	used := map[int]string{}
	for _, p := range c.ports() {
		if p.number <= 0 || p.number > 65535 {
			return fmt.Errorf("%s %d: not a TCP port", p.flag, p.number)
		}
		if other, ok := used[p.number]; ok {
			return fmt.Errorf("%s %d: port already given to %s", p.flag, p.number, other)
		}
		used[p.number] = p.flag
	}
	if c.ReadyTimeout <= 0 {
		return errors.New("--ready-timeout must be positive")
	}
	if c.StopGrace <= 0 {
		c.StopGrace = DefaultStopGrace
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

// checkPortsFree fails fast, naming the part and its flag, instead of letting a child die on
// "address already in use" deep into the start.
func (c *Config) checkPortsFree() error {
	for _, p := range c.ports() {
		ln, err := net.Listen("tcp", net.JoinHostPort(loopback, strconv.Itoa(p.number)))
		if err != nil {
			return fmt.Errorf("port %d for the %s is in use (choose another with %s): %w", p.number, p.part, p.flag, err)
		}
		_ = ln.Close()
	}
	return nil
}

func (c *Config) logFile(name string) string {
	return filepath.Join(c.StateDir, "logs", name+".log")
}

func hostPort(port int) string { return net.JoinHostPort(loopback, strconv.Itoa(port)) }
