package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
)

// KwokVersion is the kwok release RunWorkloads runs (bin/tools/kwok-<version>, `make kwok`).
const KwokVersion = "v0.8.0"

// WorkloadNodes is how many fake nodes RunWorkloads registers: three, so that a 3-member etcd
// StatefulSet spreads one member per node.
const WorkloadNodes = 3

// Poll waits, polling cond until it returns nil, for at most timeout, and fails the test with
// cond's last error when that passes. The one RunWorkloads returns also fails the test at once
// when one of the meta cluster's processes has died.
type Poll func(timeout time.Duration, cond func(ctx context.Context) error)

// RunWorkloads makes env's API server a meta cluster that runs workloads as far as the API goes:
// it adds the real kube-controller-manager (Deployments, ReplicaSets, StatefulSets, garbage
// collection, service accounts) and kube-scheduler, and kwok as the kubelets of WorkloadNodes
// fake nodes (meta-1, meta-2, ...), and returns once those nodes are Ready. Pods bound to them
// become Running and Ready; no container runs, so images need not exist (see FakeRelease).
//
// The processes run until t ends; their logs are <env.Dir>/<name>.log, shown when t fails. A test
// should wait with the returned Poll, which notices when one of them died.
//
// Unlike Start, RunWorkloads skips t when kwok (`make kwok`) or the controller-manager or
// scheduler (`make k8s-bins`) is missing, saying what to build: they are needed only by the
// tests of provider kok.
func RunWorkloads(t testing.TB, env *Env) Poll {
	t.Helper()
	tools := workloadTools(t)
	ctx := context.Background()
	c := env.Client
	procs := []*Process{
		startTool(t, env.Dir, "kube-controller-manager", tools.controllerManager,
			"--kubeconfig="+env.Kubeconfig, "--leader-elect=false", "--secure-port=0",
			"--controllers=deployment-controller,replicaset-controller,statefulset-controller,garbage-collector-controller,serviceaccount-controller"),
		startTool(t, env.Dir, "kube-scheduler", tools.scheduler,
			"--kubeconfig="+env.Kubeconfig, "--leader-elect=false", "--secure-port=0"),
		startTool(t, env.Dir, "kwok", tools.kwok,
			"--kubeconfig="+env.Kubeconfig, "--config="+strings.Join(kwokConfig(t, env.Dir), ","),
			"--server-address=127.0.0.1:"+strconv.Itoa(FreePort(t))),
	}
	poll := func(timeout time.Duration, cond func(ctx context.Context) error) {
		t.Helper()
		Eventually(t, timeout, func(ctx context.Context) error {
			for _, p := range procs {
				if p.exited() {
					// Its log's last lines follow, from the cleanup.
					t.Fatalf("harness: %s exited", p.Name)
				}
			}
			return cond(ctx)
		})
	}

	for i := 1; i <= WorkloadNodes; i++ {
		name := fmt.Sprintf("meta-%d", i)
		err := c.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      map[string]string{corev1.LabelHostname: name},
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		}})
		if err != nil {
			t.Fatalf("harness: create node %s: %v", name, err)
		}
	}
	poll(20*time.Second, func(ctx context.Context) error {
		var nodes corev1.NodeList
		if err := c.List(ctx, &nodes); err != nil {
			return err
		}
		for _, n := range nodes.Items {
			if !nodeReady(n) {
				return fmt.Errorf("node %s is not Ready yet", n.Name)
			}
			// The API server taints new nodes not-ready; the node lifecycle controller, which
			// this meta cluster does not run (it would want leases kwok does not renew here),
			// lifts the taint once they are Ready. The harness does it.
			if len(n.Spec.Taints) > 0 {
				n.Spec.Taints = nil
				if err := c.Update(ctx, &n); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return poll
}

// FakeRelease is a ClusterPackageVersion named kube for provider kok whose images are
// FakeImage(component, hex): digest-pinned, as the provider requires, and never pulled, since
// kwok runs no container. kube is one of the catalogue's releases, v1.36.3 (etcd v3.6.8) or
// v1.37.2 (etcd v3.7.0); releases that differ only in hex differ only in their images.
func FakeRelease(kube, hex string) *kokv1.ClusterPackageVersion {
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
			Name: comp, Version: version, Image: FakeImage(string(comp), hex), Args: map[string]string{"v": "2"},
		})
	}
	return cpv
}

// FakeImage is the image FakeRelease gives component name: a fake registry, and a digest of 64
// hex (one hex digit) that tells releases apart.
func FakeImage(name, hex string) string {
	return "registry.example/" + name + "@sha256:" + strings.Repeat(hex, 64)
}

// PendingPods describes the pods of namespace ns that are not Ready, one per line, for a
// failure message ("" when all are).
func PendingPods(c ctrlclient.Client, ns string) string {
	var pods corev1.PodList
	// Not the poll's context: its deadline may have passed, and this is the answer worth having.
	if err := c.List(context.Background(), &pods, ctrlclient.InNamespace(ns)); err != nil {
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

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

type workloadToolPaths struct{ kwok, controllerManager, scheduler string }

// workloadTools finds kwok and the Kubernetes binaries RunWorkloads runs, or skips t.
func workloadTools(t testing.TB) workloadToolPaths {
	t.Helper()
	repo, err := RepoRoot()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	bins, err := K8sBinDir()
	if err != nil {
		t.Skipf("%v", err)
	}
	p := workloadToolPaths{
		kwok:              filepath.Join(repo, "bin", "tools", "kwok-"+KwokVersion),
		controllerManager: filepath.Join(bins, "kube-controller-manager"),
		scheduler:         filepath.Join(bins, "kube-scheduler"),
	}
	for _, tool := range []struct{ path, build string }{
		{p.kwok, "make kwok"}, {p.controllerManager, "make k8s-bins"}, {p.scheduler, "make k8s-bins"},
	} {
		if _, err := os.Stat(tool.path); err != nil {
			t.Skipf("%s is missing (run `%s`)", tool.path, tool.build)
		}
	}
	return p
}

// kwokConfig writes and returns kwok's --config files: deploy/kwok/stages.yaml, as kok runs kwok
// (pods bound to nodes annotated kwok.x-k8s.io/node=fake become Running and Ready; deleted ones
// go), and a Node stage of the harness's own. The local system's nodes get their Ready status
// from their simulated kubelets; these nodes have none, so kwok posts it, once.
func kwokConfig(t testing.TB, dir string) []string {
	t.Helper()
	repo, err := RepoRoot()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	path := filepath.Join(dir, "kwok-node-ready.yaml")
	err = os.WriteFile(path, []byte(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: harness-node-ready
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
`), 0o644)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return []string{filepath.Join(repo, "deploy", "kwok", "stages.yaml"), path}
}

// startTool runs a program that is not kok's (path, not built from ./cmd) as a Process until t
// ends, its output in dir/<name>.log, shown when t fails.
func startTool(t testing.TB, dir, name, path string, args ...string) *Process {
	t.Helper()
	p := &Process{Name: name, Args: args, Log: filepath.Join(dir, name+".log"), bin: path, t: t}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			p.dumpLog()
		}
	})
	p.Start()
	return p
}

// exited says whether the process was started and has ended on its own.
func (p *Process) exited() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}
