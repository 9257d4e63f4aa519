package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kok.dev/contract/hostapi"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"kok.dev/activities/host"
	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
	"kok.dev/dev/simnode/catalogue"
	"kok.dev/tests/harness"
)

// hostCallWorkflow is a test-only workflow that runs one host activity, by name, on an agent's
// task queue and hands back its result as JSON: the test drives the agent the way the Machine
// workflow does, without depending on it.
const hostCallWorkflow = "agent-test-host-call"

type hostCall struct {
	Host     string
	Activity string
	Arg      json.RawMessage
}

func hostCallWorkflowFunc(ctx workflow.Context, c hostCall) (json.RawMessage, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue:           queue.HostTaskQueue(c.Host),
		StartToCloseTimeout: 3 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		// One attempt: the test wants to see errors, not retries.
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1},
	})
	var args []any
	if len(c.Arg) > 0 {
		args = append(args, c.Arg)
	}
	var out json.RawMessage
	err := workflow.ExecuteActivity(ctx, c.Activity, args...).Get(ctx, &out)
	return out, err
}

// agentDriver runs host activities on agents through hostCallWorkflow.
type agentDriver struct {
	t  *testing.T
	tc client.Client
	n  int
}

func newAgentDriver(t *testing.T, env *harness.Env) *agentDriver {
	const queue = "agent-test"
	w := worker.New(env.TemporalClient, queue, worker.Options{})
	w.RegisterWorkflowWithOptions(hostCallWorkflowFunc, workflow.RegisterOptions{Name: hostCallWorkflow})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return &agentDriver{t: t, tc: env.TemporalClient}
}

// call runs activity on host with arg (nil for none) and decodes its result into out.
func (d *agentDriver) call(hostName, activity string, arg, out any) error {
	d.t.Helper()
	var raw json.RawMessage
	if arg != nil {
		b, err := json.Marshal(arg)
		require.NoError(d.t, err)
		raw = b
	}
	d.n++
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	run, err := d.tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:        fmt.Sprintf("agent-test/%s/%d-%s", hostName, d.n, activity),
		TaskQueue: "agent-test",
	}, hostCallWorkflow, hostCall{Host: hostName, Activity: activity, Arg: raw})
	require.NoError(d.t, err)
	var res json.RawMessage
	if err := run.Get(ctx, &res); err != nil {
		return err
	}
	if out != nil {
		require.NoError(d.t, json.Unmarshal(res, out))
	}
	return nil
}

func (d *agentDriver) ensure(hostName string, m kokv1.MachinePackageVersion) hostapi.EnsurePackageResult {
	d.t.Helper()
	var res hostapi.EnsurePackageResult
	require.NoError(d.t, d.call(hostName, "EnsurePackage", hostapi.EnsurePackageParams{Spec: kube.PackageSpecFrom(&m)}, &res), m.Name)
	return res
}

func (d *agentDriver) healthy(hostName, pkg string) {
	d.t.Helper()
	var res hostapi.CheckHealthResult
	require.NoError(d.t, d.call(hostName, "CheckHealth", hostapi.CheckHealthParams{Name: pkg, Wait: true}, &res))
	require.True(d.t, res.Healthy, "%s on %s: %s", pkg, hostName, res.Message)
}

// TestAgentRunsSimulatedNode drives a real kok-agent process on a simulated host: it installs the
// container runtime and the kubelet from the simulated catalogue, the kubelet registers its Node
// and keeps its Lease, the node's services die with a killed agent and come back with a
// restarted one, and (with kwok built) a pod bound to the node runs.
func TestAgentRunsSimulatedNode(t *testing.T) {
	env := harness.Start(t, harness.Options{Agents: []string{"w1"}})
	root := env.HostRoot("w1")
	mpvs, err := catalogue.Build(filepath.Join(env.Dir, "packages"), "")
	require.NoError(t, err)
	pkgs := map[string]kokv1.MachinePackageVersion{}
	for _, m := range mpvs {
		pkgs[m.Name] = m
	}
	// The harness provisioned the host with the kubelet's kubeconfig, where the catalogue expects it.
	require.FileExists(t, filepath.Join(root, catalogue.KubeconfigPath))

	d := newAgentDriver(t, env)
	ctx := context.Background()

	// Install in dependency order, each healthy before the next.
	start := time.Now()
	for _, name := range []string{"container-runtime-1.7.0", "kubelet-1.37.2"} {
		res := d.ensure("w1", pkgs[name])
		require.Equal(t, hostapi.EnsureInstalled, res.Action, name)
		d.healthy("w1", pkgs[name].Spec.Package)
	}
	t.Logf("container-runtime and kubelet installed and healthy in %s", time.Since(start))
	require.FileExists(t, filepath.Join(root, "opt/kok/packages/kubelet/1.37.2/bin/kok-sim-kubelet"))

	var node corev1.Node
	require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Name: "w1"}, &node))
	require.Equal(t, "true", node.Labels["kok.dev/simulated"])
	require.Equal(t, "v1.37.2", node.Status.NodeInfo.KubeletVersion)
	require.Equal(t, corev1.ConditionTrue, readyStatus(node))

	var facts hostapi.FactsResult
	require.NoError(t, d.call("w1", "Facts", nil, &facts))
	require.Equal(t, []hostapi.InstalledPackage{
		{Name: "container-runtime", Version: "1.7.0", ServiceRunning: true},
		{Name: "kubelet", Version: "1.37.2", DependsOn: []string{"container-runtime"}, ServiceRunning: true},
	}, facts.Installed)
	require.True(t, facts.Simulated)

	// Idempotent: the same spec again changes nothing.
	require.Equal(t, hostapi.EnsureNone, d.ensure("w1", pkgs["kubelet-1.37.2"]).Action)

	agent := env.Agents["w1"]
	rss := agentRSS(t, root)
	t.Logf("kok-agent RSS with two services, idle: %d KiB", rss)

	// A killed agent takes its host's services with it: the kubelet stops renewing the lease.
	kubeletPID := servicePID(t, root, "kubelet")
	agent.Kill()
	harness.Eventually(t, 10*time.Second, func(context.Context) error {
		if processAlive(kubeletPID) {
			return fmt.Errorf("kubelet (pid %d) still runs after its agent was killed", kubeletPID)
		}
		return nil
	})

	// The restarted agent boots the host: its services start again from the agent's state.
	restarted := time.Now()
	agent.Start()
	harness.Eventually(t, 60*time.Second, func(context.Context) error {
		var lease coordinationv1.Lease
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: corev1.NamespaceNodeLease, Name: "w1"}, &lease); err != nil {
			return err
		}
		if !lease.Spec.RenewTime.After(restarted) {
			return fmt.Errorf("lease last renewed %s, before the agent restarted", lease.Spec.RenewTime)
		}
		return nil
	})
	require.NotEqual(t, kubeletPID, servicePID(t, root, "kubelet"))
	d.healthy("w1", "kubelet")

	// Upgrade the container runtime under the running kubelet.
	res := d.ensure("w1", pkgs["container-runtime-1.7.1"])
	require.Equal(t, hostapi.EnsureUpgraded, res.Action)
	require.Equal(t, "1.7.0", res.PreviousVersion)
	d.healthy("w1", "container-runtime")

	t.Run("kwok runs pods bound to the node", func(t *testing.T) { testKwokRunsPods(t, env) })

	// A checksum that does not match is refused and changes nothing.
	bad := pkgs["kubelet-1.37.1"]
	bad.Spec.Artifact = &kokv1.Artifact{URL: bad.Spec.Artifact.URL, SHA256: strings.Repeat("0", 64)}
	err = d.call("w1", "EnsurePackage", hostapi.EnsurePackageParams{Spec: kube.PackageSpecFrom(&bad)}, nil)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, err, &appErr)
	require.Equal(t, hostapi.ErrTypeChecksumMismatch, appErr.Type())
	require.Equal(t, hostapi.EnsureNone, d.ensure("w1", pkgs["kubelet-1.37.2"]).Action)

	var rm hostapi.RemovePackageResult
	require.NoError(t, d.call("w1", "RemovePackage", hostapi.RemovePackageParams{Name: "kubelet"}, &rm))
	require.Equal(t, hostapi.RemovePackageResult{Changed: true, Version: "1.37.2"}, rm)
	require.NoDirExists(t, filepath.Join(root, "opt/kok/packages/kubelet"))
}

// testKwokRunsPods runs kwok with deploy/kwok/stages.yaml and checks a pod bound to the simulated
// node becomes Running while the node's status stays the kubelet's.
func testKwokRunsPods(t *testing.T, env *harness.Env) {
	repo, err := harness.RepoRoot()
	require.NoError(t, err)
	kwok := filepath.Join(repo, "bin/tools/kwok-v0.8.0")
	if _, err := os.Stat(kwok); err != nil {
		t.Skipf("kwok is not built (%v): run `make kwok` to check that kwok plays the container runtime", err)
	}
	var out bytes.Buffer
	cmd := exec.Command(kwok, "--kubeconfig", env.Kubeconfig, "--config", filepath.Join(repo, "deploy/kwok/stages.yaml"),
		"--server-address", "127.0.0.1:"+strconv.Itoa(harness.FreePort(t)))
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("kwok output:\n%s", out.String())
		}
	})

	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "on-w1", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:   "w1",
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
	}
	require.NoError(t, env.Client.Create(ctx, pod))
	harness.Eventually(t, 60*time.Second, func(ctx context.Context) error {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("kwok exited: %v", err)
		default:
		}
		var p corev1.Pod
		// Not ctx: the last answer before the deadline is the one worth reporting.
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: "default", Name: "on-w1"}, &p); err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			return fmt.Errorf("pod is %q (ip %q): %+v", p.Status.Phase, p.Status.PodIP, p.Status)
		}
		return nil
	})
	var node corev1.Node
	require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Name: "w1"}, &node))
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			require.Equal(t, "KubeletReady", c.Reason, "node status stays the simulated kubelet's")
		}
	}
	var lease coordinationv1.Lease
	require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Namespace: corev1.NamespaceNodeLease, Name: "w1"}, &lease))
	require.Equal(t, "w1", *lease.Spec.HolderIdentity, "kwok does not take the node's lease")
}

func readyStatus(n corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// servicePID reads the agent supervisor's pid file of a service on a simulated host.
func servicePID(t *testing.T, root, service string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, host.RunDir, service+".pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	require.NoError(t, err)
	return pid
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// agentRSS finds the kok-agent serving root and returns its resident set size in KiB.
func agentRSS(t *testing.T, root string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !bytes.Contains(cmdline, []byte("kok-agent\x00")) || !bytes.Contains(cmdline, []byte("\x00"+root+"\x00")) {
			continue
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		require.NoError(t, err)
		for _, line := range strings.Split(string(status), "\n") {
			if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				require.NoError(t, err)
				return kib
			}
		}
	}
	t.Fatalf("no kok-agent process serves %s", root)
	return 0
}
