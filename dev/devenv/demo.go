package devenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/dev/devenv/supervisor"
	"kok.dev/dev/simnode/catalogue"
	"kok.dev/internal/tclient"
	clusterwf "kok.dev/workflows/cluster"
	machinewf "kok.dev/workflows/machine"
)

// The demo cluster's objects. They are ordinary objects applied through the API; kok's
// workflows do the work, exactly as for any cluster.
const (
	demoKubeconfigFile = "demo.kubeconfig"
	demoNamespace      = "default"
	demoApp            = "demo"
	demoReplicas       = 3
	// networkGate is the readiness gate of every demo Machine. kok dev plays the network
	// plugin that reports it (a Condition ConfigMap per node, reporter networkReporter).
	networkGate     = "NetworkReady"
	networkReporter = "network"
	// leaseDuration is how long a simulated kubelet's Lease holds (kok-sim-kubelet's default):
	// a node whose Lease is older has no live kubelet behind it.
	leaseDuration = 40 * time.Second
	// waitEvery is how often a wait for the demo looks again; its steps take seconds.
	waitEvery = time.Second
)

// demoPackages are every demo Machine's node packages, in this order in spec.packages; each
// starts at its oldest version, so that there is always an upgrade to try.
var demoPackages = []string{"container-runtime", "kubelet", "log-collector"}

// packageToChange is the package the banner suggests changing: nothing depends on it.
const packageToChange = "log-collector"

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := kokv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// quietClients stops controller-runtime from complaining, with a stack trace, that nobody set
// its logger: kok dev's clients have nothing to log that their errors do not say.
var quietClients sync.Once

func newClient(cfg *rest.Config) (client.Client, error) {
	quietClients.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	s, err := newScheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: s})
}

func clientFromKubeconfig(kubeconfig []byte) (client.Client, *rest.Config, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("demo kubeconfig: %w", err)
	}
	cfg.Timeout = checkTimeout
	c, err := newClient(cfg)
	return c, cfg, err
}

func (r *Running) demoKubeconfigPath() string {
	return filepath.Join(r.cfg.StateDir, demoKubeconfigFile)
}

// ensureDemoCluster declares the demo Cluster, unless it exists, and waits until kok-manager's
// Cluster workflow has it Running with an API server that answers.
func (r *Running) ensureDemoCluster(ctx context.Context) error {
	masters := hostNames(r.cfg.hosts(), RoleMaster)
	var kc kokv1.Cluster
	err := r.meta.Get(ctx, client.ObjectKey{Name: DemoCluster}, &kc)
	switch {
	case apierrors.IsNotFound(err):
		r.detail("creating it at %s", r.cfg.DemoVersion)
		kc = kokv1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: DemoCluster},
			Spec: kokv1.ClusterSpec{
				PackageVersion: r.cfg.DemoVersion,
				Masters:        kokv1.ClusterMasters{Count: int32(len(masters)), Hosts: masters},
				Network:        kokv1.ClusterNetwork{APIServerPort: int32(r.cfg.DemoAPIServerPort)},
			},
		}
		if err := r.meta.Create(ctx, &kc); err != nil {
			return fmt.Errorf("create Cluster %s: %w", DemoCluster, err)
		}
		r.detail("created Cluster %s; its workflow: %s", DemoCluster, r.workflowURL(clusterwf.WorkflowID(DemoCluster)))
	case err != nil:
		return fmt.Errorf("get Cluster %s: %w", DemoCluster, err)
	default:
		r.detail("Cluster %s is there (%s, %s): left as it is", DemoCluster, orNone(string(kc.Status.Phase)), orNone(kc.Status.CurrentPackageVersion))
		if fmt.Sprint(kc.Spec.Masters.Hosts) != fmt.Sprint(masters) {
			r.detail("note: it runs on masters %v; --masters applies to a new state only (kok dev down --purge)", kc.Spec.Masters.Hosts)
		}
	}

	var kubeconfig []byte
	err = r.waitFor(ctx, r.cfg.DemoTimeout, func(ctx context.Context) error {
		c, kcfg, _, err := clusterHealth(ctx, r.meta, DemoCluster)
		if err != nil {
			return err
		}
		kc, kubeconfig = *c, kcfg
		return nil
	})
	if err != nil {
		return err
	}
	r.demoInfo.Endpoint = kc.Status.Endpoint
	r.demoInfo.Version = kc.Status.CurrentPackageVersion
	r.demoInfo.UpgradeTo, err = r.newerRelease(ctx, kc.Status.CurrentPackageVersion)
	if err != nil {
		return err
	}
	r.demoInfo.RollbackTo = kc.Status.PreviousPackageVersion
	r.detail("Cluster %s is Running %s at %s", DemoCluster, kc.Status.CurrentPackageVersion, kc.Status.Endpoint)
	return r.writeDemoKubeconfigs(kubeconfig)
}

// newerRelease is the newest ClusterPackageVersion newer than current, "" when none is.
func (r *Running) newerRelease(ctx context.Context, current string) (string, error) {
	var list kokv1.ClusterPackageVersionList
	if err := r.meta.List(ctx, &list); err != nil {
		return "", fmt.Errorf("list ClusterPackageVersions: %w", err)
	}
	var names []string
	for _, cpv := range list.Items {
		names = append(names, cpv.Name)
	}
	names = sortVersions(names)
	cur, err := version.ParseGeneric(current)
	if err != nil || len(names) == 0 {
		return "", nil //nolint:nilerr // a release without a version number has no "newer"
	}
	newest := names[len(names)-1]
	if v, err := version.ParseGeneric(newest); err == nil && cur.LessThan(v) {
		return newest, nil
	}
	return "", nil
}

// clusterHealth reads the Cluster and its admin kubeconfig and asks its API server for /readyz.
// It returns why the cluster is not healthy, in words a user can act on.
func clusterHealth(ctx context.Context, meta client.Client, name string) (*kokv1.Cluster, []byte, string, error) {
	var kc kokv1.Cluster
	if err := meta.Get(ctx, client.ObjectKey{Name: name}, &kc); err != nil {
		return nil, nil, "", fmt.Errorf("get Cluster %s: %w", name, err)
	}
	st := kc.Status
	if st.Phase != kokv1.ClusterRunning || st.ReadyMasters != kc.Spec.Masters.Count || st.ObservedGeneration < kc.Generation {
		return nil, nil, "", fmt.Errorf("%s", describeCluster(&kc))
	}
	ref := st.KubeconfigSecretRef
	if ref == nil {
		return nil, nil, "", errors.New("phase Running, but status.kubeconfigSecretRef is not set yet")
	}
	var s corev1.Secret
	if err := meta.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, &s); err != nil {
		return nil, nil, "", fmt.Errorf("admin kubeconfig: %w", err)
	}
	kubeconfig := s.Data[ref.Key]
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, nil, "", fmt.Errorf("admin kubeconfig in Secret %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	cfg.Timeout = checkTimeout
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	if err := httpOK(ctx, hc, cfg.Host+"/readyz"); err != nil {
		return nil, nil, "", fmt.Errorf("phase Running, but its API server does not answer: %w", err)
	}
	detail := fmt.Sprintf("Running %s, %d/%d masters ready, %s", st.CurrentPackageVersion, st.ReadyMasters, kc.Spec.Masters.Count, st.Endpoint)
	return &kc, kubeconfig, detail, nil
}

// describeCluster says where a Cluster stands: phase, operation step and its message.
func describeCluster(kc *kokv1.Cluster) string {
	st := kc.Status
	parts := []string{orNone(string(st.Phase))}
	if op := st.Operation; op != nil {
		parts = append(parts, string(op.Type)+": "+op.Step)
		if op.Message != "" {
			parts = append(parts, op.Message)
		}
	} else if c := meta.FindStatusCondition(st.Conditions, kokv1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue && c.Message != "" {
		parts = append(parts, c.Message)
	}
	parts = append(parts, fmt.Sprintf("%d/%d masters ready", st.ReadyMasters, kc.Spec.Masters.Count))
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "no status yet"
	}
	return s
}

// writeDemoKubeconfigs gives the user the demo cluster's admin kubeconfig and provisions each
// worker host with the kubeconfig its kubelet joins with. The simulation uses the admin
// identity for the kubelets; a real node would get its own system:node:<name> certificate.
func (r *Running) writeDemoKubeconfigs(kubeconfig []byte) error {
	paths := []string{r.demoKubeconfigPath()}
	for _, h := range r.cfg.hosts() {
		if h.Role == RoleWorker {
			paths = append(paths, filepath.Join(h.Root, catalogue.KubeconfigPath))
		}
	}
	for _, p := range paths {
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, kubeconfig) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, kubeconfig, 0o600); err != nil {
			return fmt.Errorf("write kubeconfig: %w", err)
		}
	}
	return nil
}

// ensureDemoNodes gives the demo cluster its node catalogue and one Machine per worker host,
// reports the network readiness gate of each node, starts kwok, and waits until every node
// is Ready and schedulable: the Machine workflows install the packages through the agents,
// and the kubelet package registers the node.
func (r *Running) ensureDemoNodes(ctx context.Context) error {
	kubeconfig, err := os.ReadFile(r.demoKubeconfigPath())
	if err != nil {
		return err
	}
	c, _, err := clientFromKubeconfig(kubeconfig)
	if err != nil {
		return err
	}
	r.demoClient = c
	versions, err := r.ensureNodeCatalogue(ctx)
	if err != nil {
		return err
	}
	var pkgs []kokv1.PackageRef
	for _, p := range demoPackages {
		pkgs = append(pkgs, kokv1.PackageRef{Name: p, Version: versions[p][0]})
	}
	workers := hostNames(r.cfg.hosts(), RoleWorker)
	created := 0
	for _, w := range workers {
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: kokv1.ConditionNamespace, Name: w + "-" + networkReporter,
				Labels: map[string]string{kokv1.LabelNode: w, kokv1.LabelReporter: networkReporter},
			},
			Data: map[string]string{
				networkGate:              "True",
				networkGate + ".reason":  "SimulatedNetwork",
				networkGate + ".message": "kok dev plays the network plugin; set it to False to see the node cordoned",
			},
		}
		if err := createIfAbsent(ctx, c, cm); err != nil {
			return err
		}
		m := &kokv1.Machine{
			ObjectMeta: metav1.ObjectMeta{Name: w},
			Spec: kokv1.MachineSpec{
				Host:           w,
				Packages:       pkgs,
				ReadinessGates: []kokv1.ReadinessGate{{ConditionType: networkGate}},
			},
		}
		err := c.Create(ctx, m)
		switch {
		case err == nil:
			created++
		case !apierrors.IsAlreadyExists(err):
			return fmt.Errorf("create Machine %s: %w", w, err)
		}
	}
	if created > 0 {
		r.detail("created %d Machines (%s); their workflows: %s", created, packageList(pkgs), r.workflowURL(machinewf.WorkflowID(DemoCluster, workers[0])))
	} else {
		r.detail("Machines %s are there: left as they are", strings.Join(workers, ", "))
	}
	if err := r.startKwok(ctx); err != nil {
		return err
	}
	since := r.startedAt
	if err := r.waitFor(ctx, r.cfg.DemoTimeout, func(ctx context.Context) error {
		_, err := nodesHealth(ctx, c, workers, since)
		return err
	}); err != nil {
		return err
	}
	r.demoInfo.PackageChange = r.packageChange(ctx, c, workers[0], versions[packageToChange])
	r.detail("%d nodes Ready and schedulable", len(workers))
	return nil
}

// ensureNodeCatalogue creates the MachinePackageVersions of the node catalogue in the demo
// cluster, unless every demo package has versions there already, and returns the versions of
// each package there, oldest first.
func (r *Running) ensureNodeCatalogue(ctx context.Context) (map[string][]string, error) {
	versions, err := packageVersions(ctx, r.demoClient)
	if err != nil {
		return nil, err
	}
	if hasEveryPackage(versions) {
		return versions, nil
	}
	mpvs, err := readNodeCatalogue(r.cfg.NodePackages)
	if err != nil {
		return nil, err
	}
	keep := filepath.Join(r.cfg.StateDir, nodePackagesDir)
	for i := range mpvs {
		if err := keepArtifact(&mpvs[i], keep); err != nil {
			return nil, err
		}
		if err := createIfAbsent(ctx, r.demoClient, &mpvs[i]); err != nil {
			return nil, err
		}
	}
	r.detail("created %d MachinePackageVersions from %s (artifacts kept in %s)", len(mpvs), DisplayPath(r.cfg.NodePackages), DisplayPath(keep))
	if versions, err = packageVersions(ctx, r.demoClient); err != nil {
		return nil, err
	}
	if !hasEveryPackage(versions) {
		return nil, fmt.Errorf("the node catalogue in %s lacks one of %v", r.cfg.NodePackages, demoPackages)
	}
	return versions, nil
}

func hasEveryPackage(versions map[string][]string) bool {
	for _, p := range demoPackages {
		if len(versions[p]) == 0 {
			return false
		}
	}
	return true
}

func packageVersions(ctx context.Context, c client.Client) (map[string][]string, error) {
	var list kokv1.MachinePackageVersionList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list MachinePackageVersions: %w", err)
	}
	out := map[string][]string{}
	for _, m := range list.Items {
		out[m.Spec.Package] = append(out[m.Spec.Package], m.Spec.Version)
	}
	for p := range out {
		out[p] = sortVersions(out[p])
	}
	return out, nil
}

func packageList(pkgs []kokv1.PackageRef) string {
	var s []string
	for _, p := range pkgs {
		s = append(s, p.Name+" "+p.Version)
	}
	return strings.Join(s, ", ")
}

// packageChange suggests moving one package of one Machine to another version.
func (r *Running) packageChange(ctx context.Context, c client.Client, machine string, versions []string) *PackageChange {
	var m kokv1.Machine
	if err := c.Get(ctx, client.ObjectKey{Name: machine}, &m); err != nil {
		return nil
	}
	for i, p := range m.Spec.Packages {
		if p.Name != packageToChange {
			continue
		}
		for j := len(versions) - 1; j >= 0; j-- {
			if versions[j] != p.Version {
				return &PackageChange{Machine: machine, Index: i, Package: p.Name, From: p.Version, To: versions[j]}
			}
		}
	}
	return nil
}

// startKwok runs kwok against the demo cluster with kok's stages: it plays the pods of the
// nodes the simulated kubelets register, and leaves the nodes' status to them.
func (r *Running) startKwok(ctx context.Context) error {
	p, err := r.demo.Start(supervisor.Spec{
		Name: KwokName,
		Path: r.cfg.KwokBin,
		Args: []string{
			"--kubeconfig=" + r.demoKubeconfigPath(),
			"--config=" + r.cfg.KwokStages,
			"--server-address=" + hostPort(r.cfg.KwokPort),
		},
		LogPath: r.cfg.logFile(KwokName),
	})
	if err != nil {
		return err
	}
	health := "http://" + hostPort(r.cfg.KwokPort) + "/healthz"
	r.kwok = &Part{URL: "http://" + hostPort(r.cfg.KwokPort), HealthURL: health, PID: p.Pid(), Log: p.LogPath()}
	return waitHTTP(ctx, r.cfg.ReadyTimeout, p, health)
}

// nodesHealth checks each worker's Machine (Ready, schedulable, at its spec's generation) and
// Node (Ready, schedulable, a Lease renewed after renewedAfter: a live kubelet behind it).
func nodesHealth(ctx context.Context, c client.Client, workers []string, renewedAfter time.Time) (string, error) {
	var problems []string
	for _, w := range workers {
		if p := nodeProblem(ctx, c, w, renewedAfter); p != "" {
			problems = append(problems, w+": "+p)
		}
	}
	if len(problems) > 0 {
		return "", fmt.Errorf("%d/%d nodes not ready: %s", len(problems), len(workers), strings.Join(problems, "; "))
	}
	return fmt.Sprintf("%d/%d Ready and schedulable (%s)", len(workers), len(workers), strings.Join(workers, ", ")), nil
}

func nodeProblem(ctx context.Context, c client.Client, name string, renewedAfter time.Time) string {
	var m kokv1.Machine
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &m); err != nil {
		return "Machine: " + err.Error()
	}
	if ready := meta.FindStatusCondition(m.Status.Conditions, kokv1.ConditionReady); ready == nil || ready.Status != metav1.ConditionTrue || m.Status.ObservedGeneration < m.Generation {
		why := orNone(string(m.Status.Phase))
		if ready != nil && ready.Message != "" {
			why += " (" + ready.Message + ")"
		}
		return "Machine " + why
	}
	if !m.Status.Schedulable {
		why := "not schedulable"
		if s := meta.FindStatusCondition(m.Status.Conditions, kokv1.MachineConditionSchedulable); s != nil && s.Message != "" {
			why += " (" + s.Message + ")"
		}
		return "Machine " + why
	}
	var n corev1.Node
	if err := c.Get(ctx, client.ObjectKey{Name: name}, &n); err != nil {
		return "Node: " + err.Error()
	}
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue
		}
	}
	switch {
	case !ready:
		return "Node not Ready"
	case n.Spec.Unschedulable:
		return "Node cordoned"
	}
	var l coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: corev1.NamespaceNodeLease, Name: name}, &l); err != nil {
		return "Lease: " + err.Error()
	}
	if l.Spec.RenewTime == nil || !l.Spec.RenewTime.After(renewedAfter) {
		return "no kubelet renews its Lease"
	}
	return ""
}

// ensureDemoApp creates the demo Deployment, unless it exists, and waits until its pods are
// available on the nodes.
func (r *Running) ensureDemoApp(ctx context.Context) error {
	labels := map[string]string{"app": demoApp}
	replicas := int32(demoReplicas)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: demoApp},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				// kwok plays the container: the image is never pulled.
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/demo:1"}}},
			},
		},
	}
	if err := createIfAbsent(ctx, r.demoClient, d); err != nil {
		return err
	}
	if err := r.waitFor(ctx, r.cfg.DemoTimeout, func(ctx context.Context) error {
		_, err := appHealth(ctx, r.demoClient)
		return err
	}); err != nil {
		return err
	}
	r.detail("Deployment %s/%s: %d pods running on the nodes", demoNamespace, demoApp, demoReplicas)
	return nil
}

func appHealth(ctx context.Context, c client.Client) (string, error) {
	var d appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: demoNamespace, Name: demoApp}, &d); err != nil {
		return "", fmt.Errorf("get Deployment %s/%s: %w", demoNamespace, demoApp, err)
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	st := d.Status
	if st.ObservedGeneration < d.Generation || st.AvailableReplicas < want || st.UpdatedReplicas < want {
		var pods corev1.PodList
		_ = c.List(ctx, &pods, client.InNamespace(demoNamespace), client.MatchingLabels{"app": demoApp})
		var states []string
		for _, p := range pods.Items {
			states = append(states, fmt.Sprintf("%s %s on %q", p.Name, p.Status.Phase, p.Spec.NodeName))
		}
		sort.Strings(states)
		if len(states) == 0 {
			states = []string{"no pods yet"}
		}
		return "", fmt.Errorf("%d/%d pods available: %s", st.AvailableReplicas, want, strings.Join(states, ", "))
	}
	return fmt.Sprintf("Deployment %s/%s: %d/%d pods available", demoNamespace, demoApp, st.AvailableReplicas, want), nil
}

// waitFor polls check until it returns nil or timeout passes, printing each new reason it gives
// for not being there yet.
func (r *Running) waitFor(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(waitEvery)
	defer ticker.Stop()
	last := ""
	for {
		cctx, ccancel := context.WithTimeout(ctx, checkTimeout)
		err := check(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		if msg := err.Error(); msg != last && ctx.Err() == nil {
			r.detail("… %s", shorten(msg, 160))
			last = msg
		}
		select {
		case <-ctx.Done():
			if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.DeadlineExceeded) {
				return parent
			}
			return fmt.Errorf("not ready within %s: %w", timeout, err)
		case <-ticker.C:
		}
	}
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func (r *Running) workflowURL(id string) string {
	return tclient.WebUIURL(r.uiURL(), Namespace, id, "")
}
