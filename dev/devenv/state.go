package devenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	stateFile = "dev.json"
	lockFile  = "dev.lock"
)

// ErrNotRunning means no `kok dev up` runs on the state directory.
var ErrNotRunning = errors.New("kok dev up is not running")

// State is dev.json: how to reach each part of a running system.
type State struct {
	// PID is the `kok dev up` process.
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"startedAt"`
	StateDir  string    `json:"stateDir"`
	// Kubeconfig is the meta cluster's admin kubeconfig.
	Kubeconfig string `json:"kubeconfig"`
	// CAFile is the meta cluster CA, which also signs kube-controller-manager's serving cert.
	CAFile string `json:"caFile"`
	// Namespace is the Temporal namespace.
	Namespace string `json:"namespace"`
	// CodecKeyFile is the payload encryption key.
	CodecKeyFile string `json:"codecKeyFile"`
	// CRDs are the installed CRDs' names.
	CRDs []string `json:"crds"`

	Temporal          Part `json:"temporal"`
	WebUI             Part `json:"webUI"`
	Codec             Part `json:"codec"`
	Etcd              Part `json:"etcd"`
	APIServer         Part `json:"apiServer"`
	ControllerManager Part `json:"controllerManager"`
	Manager           Part `json:"manager"`

	// Hosts are the simulated hosts, masters first; none without the demo.
	Hosts []HostPart `json:"hosts,omitempty"`
	// Kwok plays the demo cluster's pods; nil without the demo.
	Kwok *Part `json:"kwok,omitempty"`
	// Demo is the demo business cluster; nil without it.
	Demo *Demo `json:"demo,omitempty"`

	// Steps are the steps of the start and how long each took.
	Steps []StepTime `json:"steps"`
	// ReadySeconds is the time from the start of `kok dev up` to ready.
	ReadySeconds float64 `json:"readySeconds"`
}

// HostPart is one simulated host: a kok-agent process with its own root directory and
// loopback address.
type HostPart struct {
	Host
	Part
}

// Demo is the demo business cluster and what there is to try on it.
type Demo struct {
	// Name is the Cluster's name in the meta cluster.
	Name string `json:"name"`
	// Kubeconfig is a copy of its admin kubeconfig (`kok kubeconfig demo` prints the same).
	Kubeconfig string `json:"kubeconfig"`
	// Endpoint is its API server.
	Endpoint string `json:"endpoint,omitempty"`
	// Version is the ClusterPackageVersion it runs; UpgradeTo a newer one of the catalogue,
	// empty when there is none; RollbackTo the one it ran before, if any.
	Version    string `json:"version,omitempty"`
	UpgradeTo  string `json:"upgradeTo,omitempty"`
	RollbackTo string `json:"rollbackTo,omitempty"`
	// Workers are its Machines, one per worker host.
	Workers []string `json:"workers"`
	// Deployment is the demo workload, namespace/name.
	Deployment string `json:"deployment"`
	// PackageChange is a node package edit to try, when the catalogue has another version.
	PackageChange *PackageChange `json:"packageChange,omitempty"`
	// Problem says why the demo is not ready; empty when it is.
	Problem string `json:"problem,omitempty"`
}

// PackageChange is an edit of one package version in one Machine's spec.packages.
type PackageChange struct {
	Machine string `json:"machine"`
	// Index is the package's position in spec.packages, for a JSON patch.
	Index   int    `json:"index"`
	Package string `json:"package"`
	From    string `json:"from"`
	To      string `json:"to"`
}

// StepTime is how long one step of the start took.
type StepTime struct {
	Step    string  `json:"step"`
	Seconds float64 `json:"seconds"`
}

// Part is one component of the running system.
type Part struct {
	// URL is where the part answers: host:port for Temporal's gRPC frontend, a URL otherwise.
	URL string `json:"url"`
	// HealthURL is what Check probes, when it is not URL itself.
	HealthURL string `json:"healthURL,omitempty"`
	// PID is set for child processes; in-process parts run under State.PID.
	PID int    `json:"pid,omitempty"`
	Log string `json:"log"`
}

func writeState(dir string, s *State) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", stateFile, err)
	}
	path := filepath.Join(dir, stateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ReadState returns the state of the `kok dev up` running on dir, or an error wrapping
// ErrNotRunning that says why there is none.
func ReadState(dir string) (*State, error) {
	holder, err := lockHolder(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, stateFile)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && holder != 0:
		return nil, fmt.Errorf("%w yet: pid %d is still starting it on %s", ErrNotRunning, holder, dir)
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w on %s (no %s): start it with `kok dev up`", ErrNotRunning, dir, stateFile)
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", path, err)
	case holder == 0:
		return nil, fmt.Errorf("%w on %s: %s is left from a run that ended without cleaning up; start it with `kok dev up`", ErrNotRunning, dir, path)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &s, nil
}

// lock is the exclusive hold of a state directory by one `kok dev up`. It is an flock, so
// the kernel drops it when its holder dies: a lock left by a dead process is simply free.
type lock struct{ f *os.File }

func acquireLock(dir string) (*lock, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another kok dev up (pid %s) is using %s; stop it first", readPid(path), dir)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	err = f.Truncate(0)
	if err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &lock{f: f}, nil
}

// release unlocks; the file stays, because removing it could let two processes lock two
// different files of the same name.
func (l *lock) release() error { return l.f.Close() }

// lockHolder returns the pid of the `kok dev up` holding dir, or 0 when none does.
func lockHolder(dir string) (int, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	// A shared lock conflicts only with the holder's exclusive one and is dropped on close.
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		return 0, nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return 0, fmt.Errorf("check lock %s: %w", path, err)
	}
	pid, err := strconv.Atoi(readPid(path))
	if err != nil {
		return -1, nil // held, by a process that has not written its pid yet
	}
	return pid, nil
}

func readPid(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(data))) == 0 {
		return "unknown"
	}
	return strings.TrimSpace(string(data))
}
