package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"kok.dev/activities/host"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/dev/devenv"
	"kok.dev/dev/simnode/catalogue"
	"kok.dev/internal/agent/state"
	"kok.dev/internal/manifest"
	"kok.dev/tests/harness"
)

// TestDevUp runs `kok dev up` as a user would, on a state directory and ports of its own: it
// waits for `kok dev status` to report every part healthy, reads the demo cluster's nodes
// with kubectl, stops the system with `kok dev down` and starts it again on the same state
// (nothing is recreated, everything is healthy), sees a killed simulated host reported by
// name, and tears everything down with `kok dev down --purge`, leaving no process behind.
func TestDevUp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole local system")
	}
	d := newDevUp(t)

	// First start, on an empty state directory: everything is created.
	run := d.up()
	d.healthy(run, 4*time.Minute)
	t.Logf("first start: ready in %s", run.readyIn(t))
	first := d.objects()
	require.Len(t, first.machines, 2)
	d.kubectlNodesReady()
	pids := d.pids()

	d.down(run)
	d.noneAlive(pids)

	// Second start on the same state: nothing is recreated, every part is healthy again.
	run = d.up()
	d.healthy(run, 2*time.Minute)
	t.Logf("restart: ready in %s", run.readyIn(t))
	out := run.output()
	for _, want := range []string{"ClusterPackageVersions v1.37.2 are there", "Cluster demo is there", "Machines worker-1, worker-2 are there: left as they are"} {
		require.Contains(t, out, want)
	}
	require.Equal(t, first, d.objects(), "no object was recreated")
	for h, n := range d.installs() {
		require.Equal(t, 1, n, "a package was installed again on %s", h)
	}
	d.kubectlNodesReady()

	// A simulated host that dies is reported by name; the rest keeps running.
	s, err := devenv.ReadState(d.state)
	require.NoError(t, err)
	victim := s.Hosts[len(s.Hosts)-1]
	require.NoError(t, syscall.Kill(victim.PID, syscall.SIGKILL))
	harness.Eventually(t, time.Minute, func(context.Context) error {
		status, err := d.kok("dev", "status", "--state-dir", d.state)
		reported := regexp.MustCompile(`(?m)^host/` + victim.Name + ` +UNHEALTHY +not running: pid ` + strconv.Itoa(victim.PID) + ` exited`)
		if err == nil || !reported.MatchString(status) {
			return fmt.Errorf("status does not report %s yet:\n%s", victim.Name, status)
		}
		return nil
	})
	harness.Eventually(t, 10*time.Second, func(context.Context) error {
		if !strings.Contains(run.output(), "kok-agent-"+victim.Name+" exited unexpectedly (signal: killed)") {
			return fmt.Errorf("kok dev up has not reported it:\n%s", run.output())
		}
		return nil
	})

	// Down and purge: no process and no state left.
	pids = d.pids()
	d.down(run, "--purge")
	d.noneAlive(pids)
	require.NoDirExists(t, d.state)
}

// devUp is one local system under test: its binaries, ports and state directory.
type devUp struct {
	t       *testing.T
	dir     string
	state   string
	kokBin  string
	kubectl string
	args    []string
}

func newDevUp(t *testing.T) *devUp {
	t.Helper()
	repo, err := harness.RepoRoot()
	require.NoError(t, err)
	bins, err := harness.K8sBinDir()
	require.NoError(t, err)
	kwok := filepath.Join(repo, "bin/tools/kwok-v0.8.0")
	if _, err := os.Stat(kwok); err != nil {
		t.Fatalf("kwok is not built (%v): run `make kwok`", err)
	}
	bin := map[string]string{}
	for _, name := range []string{"kok", "kok-manager", "kok-agent"} {
		bin[name], err = harness.Binary(name)
		require.NoError(t, err)
	}
	dir := t.TempDir()
	nodePackages := filepath.Join(dir, "node-packages")
	mpvs, err := catalogue.Build(nodePackages, "")
	require.NoError(t, err)
	docs := make([]manifest.Doc, 0, len(mpvs))
	for _, m := range mpvs {
		docs = append(docs, manifest.Doc{APIVersion: m.APIVersion, Kind: m.Kind, Name: m.Name, Spec: m.Spec})
	}
	require.NoError(t, manifest.Write(filepath.Join(nodePackages, "catalogue.yaml"), "node packages of TestDevUp", docs))

	d := &devUp{t: t, dir: dir, state: filepath.Join(dir, "state"), kokBin: bin["kok"], kubectl: filepath.Join(bins, "kubectl")}
	d.args = []string{"dev", "up",
		"--state-dir", d.state,
		"--k8s-bins", bins,
		"--crds", filepath.Join(repo, "crds"),
		"--manager-bin", bin["kok-manager"],
		"--agent-bin", bin["kok-agent"],
		"--kwok-bin", kwok,
		"--kwok-stages", filepath.Join(repo, "deploy/kwok/stages.yaml"),
		"--node-packages", nodePackages,
		// One release: packing a second one would only slow the test down.
		"--cluster-versions", harness.KubeVersion,
		"--workers", "2",
		"--demo-apiserver-port", strconv.Itoa(demoPort(t)),
	}
	flags := []string{"temporal-port", "ui-port", "codec-port", "apiserver-port", "etcd-port", "controller-manager-port",
		"manager-probe-port", "manager-metrics-port", "agent-metrics-port", "kwok-port"}
	for i, p := range distinctFreePorts(t, len(flags)) {
		d.args = append(d.args, "--"+flags[i], strconv.Itoa(p))
	}
	return d
}

// demoPort finds an API server port P whose cluster ports P..P+6 are free on the master's
// address, below the kernel's ephemeral range so that no client socket takes one meanwhile.
func demoPort(t *testing.T) int {
	for range 100 {
		p := 20000 + rand.IntN(12000)
		free := true
		for i := range 7 {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(p+i)))
			if err != nil {
				free = false
				break
			}
			_ = ln.Close()
		}
		if free {
			return p
		}
	}
	t.Fatal("no 7 free ports in a row on 127.0.0.2")
	return 0
}

// distinctFreePorts returns n free ports, each held until all are picked so that they differ.
func distinctFreePorts(t *testing.T, n int) []int {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer func() { _ = ln.Close() }()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// devUpRun is one `kok dev up` process.
type devUpRun struct {
	cmd     *exec.Cmd
	started time.Time
	ready   time.Duration
	out     *lockedBuffer
	exited  chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (r *devUpRun) output() string { return r.out.String() }

func (r *devUpRun) readyIn(t *testing.T) time.Duration {
	require.NotZero(t, r.ready)
	return r.ready.Round(100 * time.Millisecond)
}

// up starts `kok dev up` in the background, as a user's terminal would.
func (d *devUp) up() *devUpRun {
	d.t.Helper()
	r := &devUpRun{out: &lockedBuffer{}, exited: make(chan error, 1)}
	r.cmd = exec.Command(d.kokBin, d.args...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	// If the test binary dies, kok dev up goes too (and its children with it).
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	r.started = time.Now()
	require.NoError(d.t, r.cmd.Start())
	go func() { r.exited <- r.cmd.Wait() }()
	d.t.Cleanup(func() {
		if r.cmd.ProcessState == nil && syscall.Kill(r.cmd.Process.Pid, 0) == nil {
			_, _ = d.kok("dev", "down", "--state-dir", d.state, "--timeout", "30s")
		}
		if d.t.Failed() {
			d.t.Logf("--- kok dev up output ---\n%s", r.output())
		}
	})
	return r
}

// healthy waits until `kok dev status` exits 0, failing at once if kok dev up ends or reports
// the demo as not ready.
func (d *devUp) healthy(r *devUpRun, timeout time.Duration) {
	d.t.Helper()
	harness.Eventually(d.t, timeout, func(context.Context) error {
		select {
		case err := <-r.exited:
			d.t.Fatalf("kok dev up ended (%v):\n%s", err, r.output())
		default:
		}
		if strings.Contains(r.output(), "NOT ready") {
			d.t.Fatalf("the demo did not come up:\n%s", r.output())
		}
		status, err := d.kok("dev", "status", "--state-dir", d.state)
		if err != nil {
			return fmt.Errorf("%w\n%s", err, status)
		}
		return nil
	})
	r.ready = time.Since(r.started)
	status, err := d.kok("dev", "status", "--state-dir", d.state)
	require.NoError(d.t, err)
	for _, part := range []string{"temporal", "web-ui", "codec-server", "etcd", "kube-apiserver", "kube-controller-manager", "crds", "kok-manager",
		"host/master-1", "host/worker-1", "host/worker-2", "kwok", "demo/cluster", "demo/nodes", "demo/app"} {
		require.Regexp(d.t, "(?m)^"+part+" +healthy ", status)
	}
	require.Contains(d.t, r.output(), "Three things to try")
}

// down runs `kok dev down` and checks that kok dev up stopped cleanly.
func (d *devUp) down(r *devUpRun, extra ...string) {
	d.t.Helper()
	out, err := d.kok(append([]string{"dev", "down", "--state-dir", d.state}, extra...)...)
	require.NoError(d.t, err, out)
	require.Contains(d.t, out, "stopped kok dev up on "+d.state)
	select {
	case err := <-r.exited:
		require.NoError(d.t, err, "kok dev up exits 0 when stopped:\n%s", r.output())
	case <-time.After(10 * time.Second):
		d.t.Fatalf("kok dev up still runs after kok dev down:\n%s", r.output())
	}
	require.NotContains(d.t, r.output(), "did not stop within", "every part stops within its grace period")
	_, err = d.kok("dev", "status", "--state-dir", d.state)
	require.Error(d.t, err)
}

func (d *devUp) kok(args ...string) (string, error) {
	out, err := exec.Command(d.kokBin, args...).CombinedOutput()
	return string(out), err
}

// kubectlNodesReady reads the demo cluster's nodes with kubectl, through the kubeconfig that
// `kok kubeconfig demo` prints.
func (d *devUp) kubectlNodesReady() {
	d.t.Helper()
	kubeconfig, err := exec.Command(d.kokBin, "kubeconfig", "demo", "--kubeconfig", filepath.Join(d.state, "meta.kubeconfig")).Output()
	require.NoError(d.t, err)
	path := filepath.Join(d.dir, "demo.kubeconfig")
	require.NoError(d.t, os.WriteFile(path, kubeconfig, 0o600))
	out, err := exec.Command(d.kubectl, "--kubeconfig", path, "get", "nodes", "--no-headers").CombinedOutput()
	require.NoError(d.t, err, string(out))
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	require.Len(d.t, lines, 2, string(out))
	for _, l := range lines {
		require.Regexp(d.t, `^worker-\d +Ready +`, l)
	}
}

// devUpObjects are the UIDs of what the first start created.
type devUpObjects struct {
	cluster, release, deployment string
	machines                     map[string]string
}

func (d *devUp) objects() devUpObjects {
	d.t.Helper()
	// controller-runtime prints a stack trace when a client is made with no logger set.
	ctrllog.SetLogger(logr.Discard())
	scheme, err := harness.NewScheme()
	require.NoError(d.t, err)
	connect := func(kubeconfig string) client.Client {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		require.NoError(d.t, err)
		c, err := client.New(cfg, client.Options{Scheme: scheme})
		require.NoError(d.t, err)
		return c
	}
	ctx := context.Background()
	meta := connect(filepath.Join(d.state, "meta.kubeconfig"))
	demo := connect(filepath.Join(d.state, "demo.kubeconfig"))
	var o devUpObjects
	var kc kokv1.Cluster
	require.NoError(d.t, meta.Get(ctx, client.ObjectKey{Name: "demo"}, &kc))
	o.cluster = string(kc.UID)
	var cpv kokv1.ClusterPackageVersion
	require.NoError(d.t, meta.Get(ctx, client.ObjectKey{Name: harness.KubeVersion}, &cpv))
	o.release = string(cpv.UID)
	var dep appsv1.Deployment
	require.NoError(d.t, demo.Get(ctx, client.ObjectKey{Namespace: "default", Name: "demo"}, &dep))
	o.deployment = string(dep.UID)
	var ms kokv1.MachineList
	require.NoError(d.t, demo.List(ctx, &ms))
	o.machines = map[string]string{}
	for _, m := range ms.Items {
		o.machines[m.Name] = string(m.UID)
	}
	return o
}

// installs counts, per host and package version, the installs in the hosts' agent journals.
func (d *devUp) installs() map[string]int {
	d.t.Helper()
	out := map[string]int{}
	journals, err := filepath.Glob(filepath.Join(d.state, "hosts", "*", host.JournalFile))
	require.NoError(d.t, err)
	require.Len(d.t, journals, 3)
	for _, j := range journals {
		data, err := os.ReadFile(j)
		require.NoError(d.t, err)
		h := filepath.Base(strings.TrimSuffix(j, "/"+host.JournalFile))
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			var en state.Entry
			require.NoError(d.t, json.Unmarshal(line, &en))
			if en.Step == "installed" {
				out[h+": "+en.Package+"@"+en.Version]++
			}
		}
	}
	require.NotEmpty(d.t, out)
	return out
}

// pids are every process of the running system: kok dev up, its children, and the services
// the agents run.
func (d *devUp) pids() map[int]string {
	d.t.Helper()
	s, err := devenv.ReadState(d.state)
	require.NoError(d.t, err)
	pids := map[int]string{s.PID: "kok dev up"}
	for name, p := range map[string]devenv.Part{"etcd": s.Etcd, "kube-apiserver": s.APIServer, "kube-controller-manager": s.ControllerManager, "kok-manager": s.Manager, "kwok": *s.Kwok} {
		pids[p.PID] = name
	}
	for _, h := range s.Hosts {
		pids[h.PID] = "kok-agent " + h.Name
		files, err := filepath.Glob(filepath.Join(h.Root, host.RunDir, "*.pid"))
		require.NoError(d.t, err)
		for _, f := range files {
			pids[servicePIDOf(d.t, h.Root, strings.TrimSuffix(filepath.Base(f), ".pid"))] = h.Name + ": " + filepath.Base(f)
		}
	}
	require.Greater(d.t, len(pids), 10)
	return pids
}

func (d *devUp) noneAlive(pids map[int]string) {
	d.t.Helper()
	for pid, what := range pids {
		require.False(d.t, processAlive(pid), "%s (pid %d) outlived kok dev down", what, pid)
	}
}
