package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/host"
	pkiacts "kok.dev/activities/pki"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	clustercatalogue "kok.dev/dev/catalogue/cluster"
	"kok.dev/internal/agent/state"
	"kok.dev/tests/harness"
	clusterwf "kok.dev/workflows/cluster"
)

// The two releases the lifecycle tests move between.
const (
	oldRelease = "v1.36.3"
	newRelease = harness.KubeVersion
)

// clusterEnv is a meta cluster with kok-manager, agents on the master hosts, and the
// catalogue of both releases.
type clusterEnv struct {
	t   *testing.T
	env *harness.Env
	c   client.Client
}

func startClusterEnv(t *testing.T, hosts ...string) *clusterEnv {
	if testing.Short() {
		t.Skip("runs whole control planes")
	}
	env := harness.Start(t, harness.Options{Manager: true, Agents: hosts, Codec: true})
	newBins, err := harness.K8sBinDir()
	require.NoError(t, err)
	oldBins, err := harness.K8sBinDirFor(oldRelease)
	require.NoError(t, err)
	manager, err := harness.Binary("kok-manager")
	require.NoError(t, err)
	cpvs, err := clustercatalogue.Build(filepath.Join(env.Dir, "cluster-packages"), map[string]string{oldRelease: oldBins, newRelease: newBins}, manager)
	require.NoError(t, err)
	for i := range cpvs {
		require.NoError(t, env.Client.Create(context.Background(), &cpvs[i]))
	}
	return &clusterEnv{t: t, env: env, c: env.Client}
}

func (e *clusterEnv) get(name string) *kokv1.Cluster {
	e.t.Helper()
	var c kokv1.Cluster
	require.NoError(e.t, e.c.Get(context.Background(), client.ObjectKey{Name: name}, &c))
	return &c
}

// create declares a cluster on hosts at release, with ports of its own.
func (e *clusterEnv) create(name, release string, port int, hosts ...string) {
	e.t.Helper()
	five := &metav1.Duration{Duration: 5 * time.Second}
	c := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kokv1.ClusterSpec{
			PackageVersion: release,
			Masters:        kokv1.ClusterMasters{Count: int32(len(hosts)), Hosts: hosts},
			Network:        kokv1.ClusterNetwork{APIServerPort: int32(port)},
			Health:         kokv1.ClusterHealth{CheckInterval: five},
			Upgrade:        kokv1.ClusterUpgrade{HealthTimeout: &metav1.Duration{Duration: 90 * time.Second}},
		},
	}
	require.NoError(e.t, e.c.Create(context.Background(), c))
}

func (e *clusterEnv) setVersion(name, release string) {
	e.t.Helper()
	require.NoError(e.t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c := e.get(name)
		c.Spec.PackageVersion = release
		return e.c.Update(context.Background(), c)
	}))
}

// running waits until the cluster is Running at release, with every master ready.
func (e *clusterEnv) running(name, release string, timeout time.Duration) *kokv1.Cluster {
	e.t.Helper()
	var got *kokv1.Cluster
	harness.Eventually(e.t, timeout, func(context.Context) error {
		c := e.get(name)
		got = c
		st := c.Status
		if st.Phase != kokv1.ClusterRunning || st.CurrentPackageVersion != release || st.TargetPackageVersion != "" ||
			int(st.ReadyMasters) != len(c.Spec.Masters.Hosts) || st.ObservedGeneration < c.Generation {
			return fmt.Errorf("phase %s current %q target %q ready %d, operation %+v, conditions %+v",
				st.Phase, st.CurrentPackageVersion, st.TargetPackageVersion, st.ReadyMasters, st.Operation, st.Conditions)
		}
		return nil
	})
	return got
}

// clientFor reads the admin kubeconfig the way `kok kubeconfig` does: from the Secret that
// status points at.
func (e *clusterEnv) clientFor(name string) *kubernetes.Clientset {
	e.t.Helper()
	c := e.get(name)
	require.NotNil(e.t, c.Status.KubeconfigSecretRef)
	ref := c.Status.KubeconfigSecretRef
	var s corev1.Secret
	require.NoError(e.t, e.c.Get(context.Background(), client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &s))
	cfg, err := clientcmd.RESTConfigFromKubeConfig(s.Data[ref.Key])
	require.NoError(e.t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(e.t, err)
	return cs
}

// journal counts, per package, the agent journal's entries of one step on a host.
func (e *clusterEnv) journal(h, step string) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	data, err := os.ReadFile(filepath.Join(e.env.HostRoot(h), host.JournalFile))
	require.NoError(e.t, err)
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var en state.Entry
		require.NoError(e.t, json.Unmarshal(line, &en))
		if en.Step == step {
			out[en.Package+"@"+en.Version]++
		}
	}
	return out
}

func servicePIDOf(t *testing.T, root, svc string) int {
	data, err := os.ReadFile(filepath.Join(root, host.RunDir, svc+".pid"))
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.Fields(string(data))[0])
	require.NoError(t, err)
	return pid
}

// TestClusterLifecycle is the Cluster workflow end to end with the process provider on one
// simulated master: create at the older release, run a Deployment on kwok-backed nodes,
// upgrade with the canary in status (kok-manager killed midway), roll back, refuse a broken
// release by rolling back by itself, heal a killed kube-apiserver, and delete to nothing.
func TestClusterLifecycle(t *testing.T) {
	e := startClusterEnv(t, "m1")
	ctx := context.Background()
	const name = "c1"
	e.create(name, oldRelease, 16443, "m1")
	created := time.Now()
	c := e.running(name, oldRelease, 4*time.Minute)
	t.Logf("created a 1-master cluster in %s", time.Since(created).Round(time.Second))
	require.Equal(t, "https://127.0.0.2:16443", c.Status.Endpoint)
	for _, comp := range c.Status.Masters[0].Components {
		require.True(t, comp.Ready, "%+v", comp)
	}
	requireHealthyConditions(t, c)

	// The new cluster works: kok's CRDs are in it, its machine operator runs, and a
	// Deployment's pods run on kwok-backed nodes (its scheduler and controller-manager work).
	cs := e.clientFor(name)
	v, err := cs.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Equal(t, oldRelease, v.GitVersion)
	_, err = cs.Discovery().ServerResourcesForGroupVersion(kokv1.SchemeGroupVersion.String())
	require.NoError(t, err, "kok's CRDs are installed in the new cluster")
	startKwokOn(t, e.env, e.clientKubeconfig(name), cs, "kwok-1", "kwok-2")
	runDeployment(t, cs, "web", 3)

	// The payloads that carried key material are encrypted in history.
	e.noClearKeysInHistory(clusterwf.WorkflowID(name) + "/ClusterCreate-1")

	// Upgrade to the newer release; the canary shows in status; kok-manager dies midway.
	e.setVersion(name, newRelease)
	harness.Eventually(t, 2*time.Minute, func(context.Context) error {
		st := e.get(name).Status
		if st.Phase != kokv1.ClusterUpgrading || st.Operation == nil || st.Operation.CanaryHost != "m1" || st.TargetPackageVersion != newRelease {
			return fmt.Errorf("not upgrading yet: %s %+v", st.Phase, st.Operation)
		}
		return nil
	})
	e.env.Manager.Kill()
	e.env.Manager.Start()
	upgraded := time.Now()
	c = e.running(name, newRelease, 4*time.Minute)
	t.Logf("upgraded the master in %s", time.Since(upgraded).Round(time.Second))
	require.Equal(t, oldRelease, c.Status.PreviousPackageVersion)
	v, err = cs.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Equal(t, newRelease, v.GitVersion)
	upgrades := e.journal("m1", "upgraded")
	for pkg, n := range upgrades {
		require.Equal(t, 1, n, "%s upgraded more than once (the killed manager must not repeat a step)", pkg)
	}

	// Roll back by pointing spec.packageVersion back: objects survive; etcd stays newer.
	e.setVersion(name, oldRelease)
	e.running(name, oldRelease, 4*time.Minute)
	v, err = cs.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Equal(t, oldRelease, v.GitVersion)
	_, err = cs.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
	require.NoError(t, err, "the cluster's objects survive the rollback")

	// A broken release (an unknown flag) rolls back by itself and says why.
	broken := e.brokenRelease(newRelease)
	e.setVersion(name, broken)
	harness.Eventually(t, 4*time.Minute, func(context.Context) error {
		c := e.get(name)
		ready := meta.FindStatusCondition(c.Status.Conditions, "Ready")
		if c.Status.Phase != kokv1.ClusterRunning || ready == nil || ready.Reason != kokv1.ReasonRolledBack || c.Status.CurrentPackageVersion != oldRelease {
			return fmt.Errorf("not rolled back yet: %s %+v", c.Status.Phase, ready)
		}
		return nil
	})
	v, err = cs.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Equal(t, oldRelease, v.GitVersion, "the broken release is not running")

	// A killed kube-apiserver is back without a human.
	root := e.env.HostRoot("m1")
	api := process.PackageName(name, process.KubeAPIServer)
	pid := servicePIDOf(t, root, api)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	killed := time.Now()
	harness.Eventually(t, time.Minute, func(context.Context) error {
		if p := servicePIDOf(t, root, api); p == pid {
			return fmt.Errorf("kube-apiserver not restarted yet")
		}
		_, err := cs.Discovery().ServerVersion()
		return err
	})
	t.Logf("kube-apiserver back %s after it was killed", time.Since(killed).Round(time.Second))
	// Back by itself (the agent restarted it): Ready, Degraded and Reachable agree again.
	harness.Eventually(t, time.Minute, func(context.Context) error {
		c := e.get(name)
		ready := meta.FindStatusCondition(c.Status.Conditions, kokv1.ConditionReady)
		if c.Status.Phase != kokv1.ClusterRunning || ready == nil || ready.Status != metav1.ConditionTrue {
			return fmt.Errorf("not healthy again: %s %+v", c.Status.Phase, ready)
		}
		return nil
	})
	requireHealthyConditions(t, e.running(name, oldRelease, time.Minute))

	// Delete: nothing is left behind.
	e.deleteAndCheck(name, "m1")
}

// TestClusterThreeMasters creates a cluster of three masters (three etcd members) while
// kok-manager is killed in the middle, checks no component was installed twice, and upgrades
// it master by master, the canary first.
func TestClusterThreeMasters(t *testing.T) {
	hosts := []string{"m1", "m2", "m3"}
	e := startClusterEnv(t, hosts...)
	const name = "c3"
	e.create(name, oldRelease, 17443, hosts...)
	created := time.Now()
	harness.Eventually(t, 3*time.Minute, func(context.Context) error {
		st := e.get(name).Status
		if st.Operation == nil || st.Operation.Step != process.KubeAPIServer {
			return fmt.Errorf("create is not at kube-apiserver yet: %+v", st.Operation)
		}
		return nil
	})
	e.env.Manager.Kill()
	e.env.Manager.Start()
	e.running(name, oldRelease, 5*time.Minute)
	t.Logf("created a 3-master cluster in %s", time.Since(created).Round(time.Second))
	for _, h := range hosts {
		for pkg, n := range e.journal(h, "installed") {
			require.Equal(t, 1, n, "%s installed %d times on %s", pkg, n, h)
		}
	}
	cs := e.clientFor(name)
	// One etcd cluster of three members: each member talks to the two others.
	ports, err := process.PortsFor(17443)
	require.NoError(t, err)
	for _, h := range hosts {
		peers := etcdPeers(t, e.env.Addresses[h], ports.EtcdMetrics)
		require.Len(t, peers, 2, "etcd on %s has peers %v", h, peers)
	}
	_, err = cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hello"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	// The upgrade goes master by master: while the canary m1 moves, m2 and m3 stay untouched.
	e.setVersion(name, newRelease)
	upgraded := time.Now()
	harness.Eventually(t, 3*time.Minute, func(context.Context) error {
		st := e.get(name).Status
		if st.Operation == nil || st.Operation.CanaryHost != "m1" || !strings.Contains(st.Operation.Step, "m2") {
			return fmt.Errorf("not at the second master yet: %+v", st.Operation)
		}
		return nil
	})
	c := e.running(name, newRelease, 6*time.Minute)
	t.Logf("upgraded 3 masters in %s", time.Since(upgraded).Round(time.Second))
	for _, m := range c.Status.Masters {
		for _, comp := range m.Components {
			if comp.Name == kokv1.ComponentKubeAPIServer {
				require.Equal(t, newRelease, comp.Version, m.Host)
			}
		}
	}
	_, err = cs.CoreV1().Namespaces().Get(context.Background(), "hello", metav1.GetOptions{})
	require.NoError(t, err, "objects survive the upgrade")
	e.deleteAndCheck(name, hosts...)
}

// etcdPeers reads a member's metrics and returns the members it sends to.
func etcdPeers(t *testing.T, ip string, port int) []string {
	t.Helper()
	resp, err := http.Get("http://" + net.JoinHostPort(ip, strconv.Itoa(port)) + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, `etcd_network_peer_sent_bytes_total{To="`)
		if !ok {
			continue
		}
		seen[rest[:strings.IndexByte(rest, '"')]] = true
	}
	var out []string
	for p := range seen {
		out = append(out, p)
	}
	return out
}

func (e *clusterEnv) clientKubeconfig(name string) string {
	e.t.Helper()
	c := e.get(name)
	ref := c.Status.KubeconfigSecretRef
	var s corev1.Secret
	require.NoError(e.t, e.c.Get(context.Background(), client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &s))
	path := filepath.Join(e.env.Dir, name+".kubeconfig")
	require.NoError(e.t, os.WriteFile(path, s.Data[ref.Key], 0o600))
	return path
}

// brokenRelease copies a release under a new name with a kube-apiserver flag that does not
// exist: the apiserver exits at once.
func (e *clusterEnv) brokenRelease(from string) string {
	e.t.Helper()
	var cpv kokv1.ClusterPackageVersion
	require.NoError(e.t, e.c.Get(context.Background(), client.ObjectKey{Name: from}, &cpv))
	broken := &kokv1.ClusterPackageVersion{ObjectMeta: metav1.ObjectMeta{Name: from + "-broken"}, Spec: *cpv.Spec.DeepCopy()}
	for i := range broken.Spec.Components {
		if broken.Spec.Components[i].Name == kokv1.ComponentKubeAPIServer {
			broken.Spec.Components[i].Args["no-such-flag"] = "1"
		}
	}
	require.NoError(e.t, e.c.Create(context.Background(), broken))
	return broken.Name
}

func (e *clusterEnv) deleteAndCheck(name string, hosts ...string) {
	e.t.Helper()
	ctx := context.Background()
	var pids []int
	for _, h := range hosts {
		for _, comp := range []string{process.Etcd, process.KubeAPIServer, process.KubeControllerManager, process.KubeScheduler, process.MachineOperator} {
			pids = append(pids, servicePIDOf(e.t, e.env.HostRoot(h), process.PackageName(name, comp)))
		}
	}
	require.NoError(e.t, e.c.Delete(ctx, e.get(name)))
	harness.Eventually(e.t, 3*time.Minute, func(ctx context.Context) error {
		err := e.c.Get(ctx, client.ObjectKey{Name: name}, &kokv1.Cluster{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("cluster still there (%w)", err)
	})
	for _, pid := range pids {
		require.Error(e.t, syscall.Kill(pid, 0), "process %d still runs", pid)
	}
	for _, h := range hosts {
		root := e.env.HostRoot(h)
		require.NoDirExists(e.t, filepath.Join(root, "etc/kok/clusters", name))
		require.NoDirExists(e.t, filepath.Join(root, "var/lib/kok/clusters", name))
		entries, _ := os.ReadDir(filepath.Join(root, "opt/kok/packages"))
		for _, en := range entries {
			require.False(e.t, strings.HasPrefix(en.Name(), "kc-"+name+"-"), "package %s left on %s", en.Name(), h)
		}
	}
	var secrets corev1.SecretList
	require.NoError(e.t, e.c.List(ctx, &secrets, client.MatchingLabels{pkiacts.LabelCluster: name}))
	require.Empty(e.t, secrets.Items, "PKI Secrets left behind")
}

// noClearKeysInHistory reads a workflow's raw history and checks that no private key shows.
func (e *clusterEnv) noClearKeysInHistory(id string) {
	e.t.Helper()
	iter := e.env.Temporal.GetDefaultClient().GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(e.t, err)
		raw, err := json.Marshal(ev)
		require.NoError(e.t, err)
		require.NotContains(e.t, string(raw), "PRIVATE KEY", "event %d of %s", ev.EventId, id)
		n++
	}
	require.Greater(e.t, n, 10, "history of %s read", id)
}

// startKwokOn runs kwok against a business cluster and adds nodes for it to play.
func startKwokOn(t *testing.T, env *harness.Env, kubeconfig string, cs *kubernetes.Clientset, nodes ...string) {
	repo, err := harness.RepoRoot()
	require.NoError(t, err)
	kwok := filepath.Join(repo, "bin/tools/kwok-v0.8.0")
	if _, err := os.Stat(kwok); err != nil {
		t.Fatalf("kwok is not built (%v): run `make kwok`", err)
	}
	// kwok's own stages (from its module, which `make kwok` downloaded): nodes become Ready and
	// keep a lease, pods bound to them run.
	modcache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	require.NoError(t, err)
	stages := filepath.Join(strings.TrimSpace(string(modcache)), "sigs.k8s.io/kwok@v0.8.0/kustomize/stage")
	args := []string{"--kubeconfig", kubeconfig,
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=10.244.0.1/16", "--server-address", "127.0.0.1:" + strconv.Itoa(harness.FreePort(t))}
	for _, f := range []string{"node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml", "pod/fast/pod-ready.yaml", "pod/fast/pod-delete.yaml"} {
		require.FileExists(t, filepath.Join(stages, f))
		args = append(args, "--config", filepath.Join(stages, f))
	}
	var out bytes.Buffer
	cmd := exec.Command(kwok, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		err := <-exited
		if t.Failed() {
			t.Logf("kwok (%v) output:\n%s", err, out.String())
		}
	})
	for _, n := range nodes {
		_, err := cs.CoreV1().Nodes().Create(context.Background(), &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: n, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}, Labels: map[string]string{"type": "kwok"}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
	}
}

// runDeployment creates a Deployment and waits for all its pods to run on the nodes.
func runDeployment(t *testing.T, cs *kubernetes.Clientset, name string, replicas int32) {
	labels := map[string]string{"app": name}
	_, err := cs.AppsV1().Deployments("default").Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:   []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
					Tolerations:  []corev1.Toleration{{Key: "kwok.x-k8s.io/node", Operator: corev1.TolerationOpExists}},
					NodeSelector: map[string]string{"type": "kwok"},
				},
			},
		},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	harness.Eventually(t, 2*time.Minute, func(context.Context) error {
		// Not the deadline's context: the last answer before it is the one worth reporting.
		ctx := context.Background()
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return err
		}
		running := 0
		var states []string
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
				running++
			}
			states = append(states, fmt.Sprintf("%s on %q: %s %v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions))
		}
		if running != int(replicas) {
			d, err := cs.AppsV1().Deployments("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			nodes, _ := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			var ns []string
			for _, n := range nodes.Items {
				ns = append(ns, fmt.Sprintf("%s %v", n.Name, n.Status.Conditions))
			}
			return fmt.Errorf("%d of %d pods running: %v; deployment %+v; nodes %v", running, replicas, states, d.Status, ns)
		}
		return nil
	})
}

// requireHealthyConditions checks that a healthy cluster's conditions agree: Ready, not
// Degraded, every master reachable from the meta cluster.
func requireHealthyConditions(t *testing.T, c *kokv1.Cluster) {
	t.Helper()
	for typ, want := range map[string]metav1.ConditionStatus{
		kokv1.ConditionReady: metav1.ConditionTrue, kokv1.ConditionDegraded: metav1.ConditionFalse, kokv1.ClusterConditionReachable: metav1.ConditionTrue,
	} {
		cond := meta.FindStatusCondition(c.Status.Conditions, typ)
		require.NotNil(t, cond, "condition %s: %+v", typ, c.Status.Conditions)
		require.Equal(t, want, cond.Status, "%s: %+v", typ, cond)
	}
}
