package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/pki"
	"kok.dev/activities/provider/kok"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/tests/harness"
)

// TestKokProviderControlPlane is the kok provider below the Cluster workflow: its activities,
// called as the workflow calls them (through Temporal's test activity environment, so params and
// results cross the data converter), bring a 3-master control plane up at one release, roll it
// to another and delete it, in a meta cluster that runs the workloads for real as far as the API
// goes: envtest's kube-apiserver and etcd, the real kube-controller-manager (Deployments,
// ReplicaSets, StatefulSets, garbage collection) and kube-scheduler, and kwok as the kubelets of
// three fake nodes (pods become Running and Ready; no container runs, so images need not exist).
func TestKokProviderControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a meta cluster with controllers, a scheduler and kwok")
	}
	tools := kpTools(t)
	env := harness.Start(t, harness.Options{})
	began := time.Now()
	ctx := context.Background()
	c := env.Client

	eventually := kpStartMeta(t, env, tools)

	// Two releases: what differs is only the images (fake digests: kwok pulls nothing).
	for _, v := range []struct{ name, hex string }{{"v1.36.3", "a"}, {"v1.37.2", "b"}} {
		require.NoError(t, c.Create(ctx, kpRelease(v.name, v.hex)))
	}
	cluster := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "c1"},
		Spec: kokv1.ClusterSpec{
			PackageVersion: "v1.36.3", Provider: kokv1.ProviderKok,
			Masters:    kokv1.ClusterMasters{Count: 3},
			Components: []kokv1.ClusterComponent{{Name: kokv1.ComponentKubeAPIServer, Args: map[string]string{"audit-log-maxage": "7"}}},
		},
	}
	require.NoError(t, c.Create(ctx, cluster))
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(cluster), cluster)) // with the API's defaults

	a := &kok.Activities{Client: c, Operator: &kok.Operator{
		TemporalAddress: "temporal.kok-system:7233", TemporalNamespace: "kok", CodecKeys: []byte("test codec keys"),
	}}
	p := &pki.Activities{Client: c}
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(a)
	aenv.RegisterActivity(p)
	call := func(activity, params, result any) {
		t.Helper()
		val, err := aenv.ExecuteActivity(activity, params)
		require.NoError(t, err)
		require.NoError(t, val.Get(result))
	}
	ensure := func(params kok.EnsureParams) kok.EnsureResult {
		t.Helper()
		var res kok.EnsureResult
		call(a.EnsureControlPlane, params, &res)
		return res
	}
	status := func(ctx context.Context, version string) (kok.Status, error) {
		val, err := aenv.ExecuteActivity(a.ControlPlaneStatus, kok.StatusParams{Cluster: "c1", PackageVersion: version})
		if err != nil {
			return kok.Status{}, err
		}
		var st kok.Status
		return st, val.Get(&st)
	}

	// 1. The PKI, as the workflow makes it for this provider.
	pkiParams, err := kok.PKIParams("c1", "", cluster.Spec.Masters.Count, cluster.Spec.Network)
	require.NoError(t, err)
	var pkiRes pki.EnsureClusterPKIResult
	call(p.EnsureClusterPKI, pkiParams, &pkiRes)

	// 2. Create at v1.36.3, with the spec the workflow passes; a second call changes nothing.
	res := ensure(kok.EnsureParams{
		Cluster: "c1", PackageVersion: "v1.36.3",
		Masters: cluster.Spec.Masters.Count, Network: &cluster.Spec.Network, Components: cluster.Spec.Components,
	})
	all := []string{
		"Service/c1-etcd", "StatefulSet/c1-etcd", "Service/c1-kube-apiserver", "Deployment/c1-kube-apiserver",
		"Deployment/c1-kube-controller-manager", "Deployment/c1-kube-scheduler",
		"Secret/c1-machine-operator-codec", "Deployment/c1-machine-operator",
	}
	require.Equal(t, all, res.Objects)
	require.Equal(t, all, res.Created)
	require.Empty(t, res.Updated)
	again := ensure(kok.EnsureParams{Cluster: "c1", PackageVersion: "v1.36.3"})
	require.False(t, again.Changed(), "applying the same render again writes nothing: %+v", again)

	waitReady := func(version string) kok.Status {
		t.Helper()
		var st kok.Status
		eventually(40*time.Second, func(ctx context.Context) error {
			var err error
			if st, err = status(ctx, version); err != nil {
				return err
			}
			if !st.Ready {
				return fmt.Errorf("%s%s", st.Message, kpPendingPods(c, "kok-cluster-c1"))
			}
			return nil
		})
		return st
	}
	st := waitReady("v1.36.3")
	t.Logf("control plane at v1.36.3 ready %s after start", time.Since(began).Round(time.Millisecond))
	require.Equal(t, "v1.36.3", st.PackageVersion)
	require.Len(t, st.Components, 5)
	for _, comp := range st.Components {
		require.True(t, comp.Ready, "%s: %s", comp.Name, comp.Message)
		require.Equal(t, int32(3), comp.DesiredReplicas, comp.Name)
		require.Equal(t, int32(3), comp.ReadyReplicas, comp.Name)
		require.Equal(t, []kok.VersionCount{{PackageVersion: "v1.36.3", Pods: 3}}, comp.Pods, comp.Name)
	}
	require.Equal(t, "v3.6.8", st.Components[0].Version, "etcd's own version")

	var etcdPods corev1.PodList
	require.NoError(t, c.List(ctx, &etcdPods, client.InNamespace("kok-cluster-c1"), client.MatchingLabels{kok.LabelComponent: "etcd"}))
	require.Len(t, etcdPods.Items, 3)
	nodes := map[string]bool{}
	for _, pod := range etcdPods.Items {
		nodes[pod.Spec.NodeName] = true
		require.Equal(t, corev1.PodRunning, pod.Status.Phase, pod.Name)
		require.Equal(t, kpImage("etcd", "a"), pod.Spec.Containers[0].Image)
		require.Equal(t, "c1-etcd", pod.Spec.Subdomain, "the headless Service gives each member its DNS name")
	}
	require.Len(t, nodes, 3, "etcd members spread over the nodes")

	// 3. Upgrade to v1.37.2: the workflow names the version; the spec comes from the Cluster.
	res = ensure(kok.EnsureParams{Cluster: "c1", PackageVersion: "v1.37.2"})
	require.Empty(t, res.Created)
	require.Equal(t, []string{
		"StatefulSet/c1-etcd", "Deployment/c1-kube-apiserver", "Deployment/c1-kube-controller-manager",
		"Deployment/c1-kube-scheduler", "Deployment/c1-machine-operator",
	}, res.Updated, "Services and the codec Secret do not change with the release")
	upgraded := time.Now()
	st = waitReady("v1.37.2")
	t.Logf("rollout to v1.37.2 done in %s", time.Since(upgraded).Round(time.Millisecond))
	require.Equal(t, "v1.37.2", st.PackageVersion)
	require.Equal(t, "v3.7.0", st.Components[0].Version)
	st, err = status(ctx, "v1.36.3")
	require.NoError(t, err)
	require.False(t, st.Ready)
	require.Contains(t, st.Message, "etcd: rendered from v1.37.2, not v1.36.3")

	// 4. Payload encryption turned off in the worker's configuration: the codec Secret goes
	// (Ensure prunes what the render no longer has), the operator rolls without it.
	a.Operator.CodecKeys = nil
	res = ensure(kok.EnsureParams{Cluster: "c1", PackageVersion: "v1.37.2"})
	require.Equal(t, []string{"Deployment/c1-machine-operator"}, res.Updated)
	require.Equal(t, []string{"Secret/c1-machine-operator-codec"}, res.Deleted)
	waitReady("v1.37.2")

	// 5. Delete, until nothing is left; the PKI stays for DeleteClusterPKI.
	var del kok.DeleteResult
	call(a.DeleteControlPlane, kok.DeleteParams{Cluster: "c1"}, &del)
	require.ElementsMatch(t, slices.DeleteFunc(all, func(o string) bool { return strings.HasPrefix(o, "Secret/") }), del.Deleted)
	eventually(30*time.Second, func(ctx context.Context) error {
		call(a.DeleteControlPlane, kok.DeleteParams{Cluster: "c1"}, &del)
		if len(del.Left) > 0 {
			return fmt.Errorf("left: %s", strings.Join(del.Left, ", "))
		}
		return nil
	})
	require.Empty(t, del.Deleted, "a later call has nothing more to delete")
	var secrets corev1.SecretList
	require.NoError(t, c.List(ctx, &secrets, client.InNamespace("kok-cluster-c1"), client.HasLabels{pki.LabelPKI}))
	require.Len(t, secrets.Items, len(pkiRes.Secrets), "the PKI is not the provider's to delete")
	t.Logf("whole test %s", time.Since(began).Round(time.Millisecond))
}

// kpStartMeta adds to envtest what a meta cluster needs to run workloads: the real
// kube-controller-manager and kube-scheduler, and kwok playing three Ready nodes. The returned
// poll also fails at once when one of those processes died.
func kpStartMeta(t *testing.T, env *harness.Env, tools kpToolPaths) func(time.Duration, func(context.Context) error) {
	ctx := context.Background()
	c := env.Client
	// The parts of a meta cluster that envtest leaves out.
	procs := []*kpProcess{
		kpStart(t, env.Dir, "kube-controller-manager", tools.controllerManager,
			"--kubeconfig="+env.Kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--controllers=deployment-controller,replicaset-controller,statefulset-controller,garbage-collector-controller,serviceaccount-controller"),
		kpStart(t, env.Dir, "kube-scheduler", tools.scheduler,
			"--kubeconfig="+env.Kubeconfig, "--leader-elect=false", "--secure-port=0"),
		kpStart(t, env.Dir, "kwok", tools.kwok,
			"--kubeconfig="+env.Kubeconfig, "--config="+strings.Join(kpKwokConfig(t, env.Dir), ","),
			"--server-address=127.0.0.1:"+strconv.Itoa(harness.FreePort(t))),
	}
	eventually := func(timeout time.Duration, cond func(ctx context.Context) error) {
		t.Helper()
		harness.Eventually(t, timeout, func(ctx context.Context) error {
			for _, p := range procs {
				p.requireRunning(t)
			}
			return cond(ctx)
		})
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("meta-%d", i)
		require.NoError(t, c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{corev1.LabelHostname: name},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		}}))
	}
	eventually(20*time.Second, func(ctx context.Context) error {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes); err != nil {
			return err
		}
		for _, n := range nodes.Items {
			if readyStatus(n) != corev1.ConditionTrue {
				return fmt.Errorf("node %s is not Ready yet", n.Name)
			}
			// The API server taints new nodes not-ready; the node lifecycle controller, which
			// this meta cluster does not run (it would want leases kwok does not renew here),
			// lifts the taint once they are Ready. The test does it.
			if len(n.Spec.Taints) > 0 {
				n.Spec.Taints = nil
				if err := c.Update(ctx, &n); err != nil {
					return err
				}
			}
		}
		return nil
	})

	return eventually
}

// kpPendingPods describes the pods of namespace ns that are not ready, for a failure message.
func kpPendingPods(c client.Client, ns string) string {
	var pods corev1.PodList
	// Not the poll's context: its deadline may have passed, and this is the answer worth having.
	if err := c.List(context.Background(), &pods, client.InNamespace(ns)); err != nil {
		return "\nlist pods: " + err.Error()
	}
	var b strings.Builder
	for _, p := range pods.Items {
		ready := false
		for _, cond := range p.Status.Conditions {
			ready = ready || cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue
		}
		if !ready {
			fmt.Fprintf(&b, "\npod %s: node %q, phase %s, conditions %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions)
		}
	}
	return b.String()
}

// kpRelease is a ClusterPackageVersion for provider kok whose images carry fake digests.
func kpRelease(kube, hex string) *kokv1.ClusterPackageVersion {
	etcd := map[string]string{"v1.36.3": "v3.6.8", "v1.37.2": "v3.7.0"}[kube]
	cpv := &kokv1.ClusterPackageVersion{
		ObjectMeta: metav1.ObjectMeta{Name: kube},
		Spec:       kokv1.ClusterPackageVersionSpec{KubernetesVersion: kube},
	}
	for _, comp := range []kokv1.ControlPlaneComponentName{
		kokv1.ComponentEtcd, kokv1.ComponentKubeAPIServer, kokv1.ComponentKubeControllerManager,
		kokv1.ComponentKubeScheduler, kokv1.ComponentMachineOperator,
	} {
		version := kube
		switch comp {
		case kokv1.ComponentEtcd:
			version = etcd
		case kokv1.ComponentMachineOperator:
			version = "v0.1.0"
		}
		cpv.Spec.Components = append(cpv.Spec.Components, kokv1.ControlPlaneComponent{
			Name: comp, Version: version, Image: kpImage(string(comp), hex), Args: map[string]string{"v": "2"},
		})
	}
	return cpv
}

func kpImage(name, hex string) string {
	return "registry.example/" + name + "@sha256:" + strings.Repeat(hex, 64)
}

type kpToolPaths struct{ kwok, controllerManager, scheduler string }

// kpTools finds kwok (make kwok) and kube-controller-manager and kube-scheduler (make k8s-bins),
// and skips the test, saying what to build, when one is missing.
func kpTools(t *testing.T) kpToolPaths {
	repo, err := harness.RepoRoot()
	require.NoError(t, err)
	bins, err := harness.K8sBinDir()
	if err != nil {
		t.Skipf("%v", err)
	}
	p := kpToolPaths{
		kwok:              filepath.Join(repo, "bin", "tools", "kwok-v0.8.0"),
		controllerManager: filepath.Join(bins, "kube-controller-manager"),
		scheduler:         filepath.Join(bins, "kube-scheduler"),
	}
	for path, build := range map[string]string{p.kwok: "make kwok", p.controllerManager: "make k8s-bins", p.scheduler: "make k8s-bins"} {
		if _, err := os.Stat(path); err != nil {
			t.Skipf("%s is missing (run `%s`)", path, build)
		}
	}
	return p
}

// kpKwokConfig returns kwok's --config files: deploy/kwok/stages.yaml, as kok runs kwok (pods
// bound to nodes annotated kwok.x-k8s.io/node=fake become Running and Ready; deleted ones go),
// and a Node stage of this test's own. The local system's nodes get their Ready status from
// their simulated kubelets; these nodes have none, so kwok posts it, once.
func kpKwokConfig(t *testing.T, dir string) []string {
	repo, err := harness.RepoRoot()
	require.NoError(t, err)
	path := filepath.Join(dir, "kwok-node-ready.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: kokprovider-test-node-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ["True"]
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - type: Ready
        status: "True"
        reason: KubeletReady
        message: kwok plays this node's kubelet
        lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
      addresses:
      - type: InternalIP
        address: {{ NodeIP | Quote }}
      allocatable:
        cpu: 1k
        memory: 1Ti
        pods: 1M
      capacity:
        cpu: 1k
        memory: 1Ti
        pods: 1M
`), 0o644))
	return []string{filepath.Join(repo, "deploy", "kwok", "stages.yaml"), path}
}

// kpProcess is a program this test runs beside the API server until the test ends.
type kpProcess struct {
	name, log string
	done      chan struct{}
}

// kpStart runs bin in its own process group (dying with the test binary); its output goes to
// dir/<name>.log, whose end is shown when the test fails.
func kpStart(t *testing.T, dir, name, bin string, args ...string) *kpProcess {
	p := &kpProcess{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("--- last lines of %s ---\n%s", p.name, p.tail())
		}
	})
	return p
}

// requireRunning fails the test at once when the process has exited.
func (p *kpProcess) requireRunning(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("%s exited:\n%s", p.name, p.tail())
	default:
	}
}

func (p *kpProcess) tail() []byte {
	b, _ := os.ReadFile(p.log)
	const max = 16 << 10
	if len(b) > max {
		b = b[len(b)-max:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return b
}
