package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a kok binary the harness runs for a test: a real OS process whose output goes to a
// log file, shown in the test log when the test fails.
type Process struct {
	Name string
	Args []string
	Log  string

	bin  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	t    testing.TB
}

var (
	buildMu   sync.Mutex
	buildDone = map[string]string{}
)

// Binary builds ./cmd/<name> once per test process into bin/test and returns its path. Builds are
// incremental (the Go build cache), and each lands under a temporary name first and is renamed,
// so test packages running in parallel never see a half-written binary.
func Binary(name string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildDone[name]; ok {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "bin", "test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	tmp := fmt.Sprintf("%s.%d", out, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "./cmd/"+name)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/%s: %w\n%s", name, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	buildDone[name] = out
	return out, nil
}

// NewProcess prepares (does not start) ./cmd/<bin> with args; its log is <Dir>/<name>.log.
func (e *Env) NewProcess(name, bin string, args ...string) *Process {
	e.t.Helper()
	path, err := Binary(bin)
	if err != nil {
		e.t.Fatalf("harness: %v", err)
	}
	p := &Process{Name: name, Args: args, Log: filepath.Join(e.Dir, name+".log"), bin: path, t: e.t}
	e.t.Cleanup(func() {
		p.Stop()
		if e.t.Failed() {
			p.dumpLog()
		}
	})
	return p
}

// Start runs the process; it is an error to start one that is running.
func (p *Process) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.t.Fatalf("harness: %s already running", p.Name)
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("harness: %v", err)
	}
	cmd := exec.Command(p.bin, p.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, and die with the test binary: a crashed test leaves nothing running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatalf("harness: start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
}

// PID is the process's id, 0 when it is not running.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Stop asks the process to end (SIGTERM), kills it after a grace period, and waits.
func (p *Process) Stop() { p.signal(syscall.SIGTERM, 20*time.Second) }

// Kill ends the process at once (SIGKILL), as a crash or power loss would, and waits.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, 0) }

// Restart stops the process and starts it again with the same arguments.
func (p *Process) Restart() {
	p.Stop()
	p.Start()
}

func (p *Process) signal(sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, sig)
	if grace > 0 {
		select {
		case <-done:
			return
		case <-time.After(grace):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}
	<-done
}

func (p *Process) dumpLog() {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return
	}
	const max = 16 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	p.t.Logf("--- last lines of %s (%s) ---\n%s", p.Name, p.Log, b)
}

// StartManager runs kok-manager against this environment's API server and Temporal.
func (e *Env) StartManager(extraArgs ...string) *Process {
	e.t.Helper()
	if e.Temporal == nil {
		e.startTemporal()
	}
	args := append([]string{
		"--kubeconfig", e.Kubeconfig,
		"--temporal-address", e.TemporalAddress,
		"--temporal-namespace", e.TemporalNamespace,
		"--metrics-bind-address", "127.0.0.1:0",
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(FreePort(e.t)),
		"--leader-elect=false",
	}, extraArgs...)
	if e.CodecKeyFile != "" {
		args = append(args, "--codec-key-file", e.CodecKeyFile)
	}
	p := e.NewProcess("kok-manager", "kok-manager", args...)
	p.Start()
	return p
}

// HostRoot is the root directory of simulated host host.
func (e *Env) HostRoot(host string) string { return filepath.Join(e.Dir, "hosts", host) }

// StartAgent runs kok-agent as a simulated host named host, rooted in HostRoot(host). Like a real
// host's provisioning, it places the kubeconfig the kubelet package joins the cluster with at
// /etc/kubernetes/kubelet.kubeconfig under that root.
func (e *Env) StartAgent(host string, extraArgs ...string) *Process {
	e.t.Helper()
	if e.Temporal == nil {
		e.startTemporal()
	}
	kubeconfig, err := os.ReadFile(e.Kubeconfig)
	if err != nil {
		e.t.Fatalf("harness: %v", err)
	}
	dst := filepath.Join(e.HostRoot(host), "etc", "kubernetes", "kubelet.kubeconfig")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
	if err := os.WriteFile(dst, kubeconfig, 0o600); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
	addr, ok := e.Addresses[host]
	if !ok {
		if e.Addresses == nil {
			e.Addresses = map[string]string{}
		}
		// 127.0.0.1 stays the meta cluster's; hosts of one test take the next ones.
		addr = fmt.Sprintf("127.0.0.%d", len(e.Addresses)+2)
		e.Addresses[host] = addr
	}
	args := append([]string{
		"--host", host,
		"--address", addr,
		"--simulate",
		"--root", e.HostRoot(host),
		"--temporal-address", e.TemporalAddress,
		"--temporal-namespace", e.TemporalNamespace,
		"--metrics-bind-address", "127.0.0.1:0",
	}, extraArgs...)
	if e.CodecKeyFile != "" {
		args = append(args, "--codec-key-file", e.CodecKeyFile)
	}
	p := e.NewProcess("kok-agent-"+host, "kok-agent", args...)
	p.Start()
	return p
}

// Eventually polls cond every interval until it returns nil or timeout passes, then fails the test
// with the last error: the harness's way to wait for state without sleeping blindly.
func Eventually(t testing.TB, timeout time.Duration, cond func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = cond(ctx); last == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not true within %s: %v", timeout, last)
		case <-tick.C:
		}
	}
}
