package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	agent "kok.dev/cmd/kok-agent/app"
	manager "kok.dev/cmd/kok-manager/app"
	"kok.dev/tests/harness"
)

// The kustomizations under deploy/ that must exist; any other one found there is checked too.
const (
	deployCRDs    = "deploy/crds"
	deployManager = "deploy/manager"
	deployAgent   = "deploy/agent"
	deployExample = "deploy/overlays/example"
)

// The ServiceAccounts of kok-manager and kok-agent, as the API server names them in an access review.
const (
	managerUser = "system:serviceaccount:kok-system:kok-manager"
	agentUser   = "system:serviceaccount:kok-agent:kok-agent"
)

// access is one thing a ServiceAccount must (allowed) or must not be able to do. ns "" is cluster
// scope or every namespace; name "" is any object.
type access struct {
	user                       string
	verb, group, resource, sub string
	ns, name                   string
	allowed                    bool
	why                        string
}

func (a access) String() string {
	res := a.resource
	if a.sub != "" {
		res += "/" + a.sub
	}
	if a.group != "" {
		res += "." + a.group
	}
	where := "cluster-wide"
	if a.ns != "" {
		where = "in " + a.ns
	}
	if a.name != "" {
		where += " named " + a.name
	}
	return fmt.Sprintf("%s %s %s %s", strings.TrimPrefix(a.user, "system:serviceaccount:"), a.verb, res, where)
}

// managerAccess is what kok-manager's code calls (allowed) and what it must never be able to do.
// deploy/manager/rbac.yaml follows it: TestDeployManifests fails on a rule that no allowed row
// here explains, TestDeployDryRun asks the API server's authorizer about every row.
func managerAccess() []access {
	var out []access
	allow := func(why, group, resource, sub, ns, name string, verbs ...string) {
		for _, v := range verbs {
			out = append(out, access{managerUser, v, group, resource, sub, ns, name, true, why})
		}
	}
	deny := func(why, group, resource, sub, ns, name string, verbs ...string) {
		for _, v := range verbs {
			out = append(out, access{managerUser, v, group, resource, sub, ns, name, false, why})
		}
	}
	const clusterNS = "kok-cluster-demo" // a business cluster's namespace in the meta cluster
	// Reads through the cached client (mgr.GetClient()) need a cluster-wide list and watch;
	// reads through the uncached one (Deps.Direct) get and list only.
	cached := []string{"get", "list", "watch"}

	allow("Machine watcher and activities/kube read Machines, patch the finalizer on and off", "kok.dev", "machines", "", "", "", append(cached, "patch")...)
	allow("Machine watcher and activities/kube ReportMachineStatus: Status().Patch", "kok.dev", "machines", "status", "", "", "patch")
	deny("users declare Machines", "kok.dev", "machines", "", "", "", "create", "update", "delete", "deletecollection")
	allow("Cluster watcher reads Clusters and patches the finalizer on", "kok.dev", "clusters", "", "", "", append(cached, "patch")...)
	allow("activities/controlplane ReleaseCluster takes the finalizer off with an update", "kok.dev", "clusters", "", "", "", "update")
	allow("Cluster watcher: Status().Patch", "kok.dev", "clusters", "status", "", "", "patch")
	allow("activities/controlplane ReportClusterStatus: Status().Update", "kok.dev", "clusters", "status", "", "", "update")
	deny("users declare Clusters", "kok.dev", "clusters", "", "", "", "create", "delete", "deletecollection")
	for _, kind := range []string{"machines", "clusters"} {
		deny("nothing kok creates names a kok object as owner", "kok.dev", kind, "finalizers", "", "", "update")
	}
	for _, kind := range []string{"noderollouts", "nodefaults", "ratelimitpolicies"} {
		deny("no code uses this kind yet", "kok.dev", kind, "", "", "", "get", "list", "patch", "create")
	}
	for _, kind := range []string{"machinepackageversions", "clusterpackageversions"} {
		allow("the catalogues are read and watched (Machine and Cluster watchers)", "kok.dev", kind, "", "", "", cached...)
		deny("the catalogues are immutable and the users'", "kok.dev", kind, "", "", "", "create", "update", "patch", "delete")
	}
	allow("Machine watcher watches Nodes; SetNodeSchedulable patches; ReleaseMachine deletes", "", "nodes", "", "", "", append(cached, "patch", "delete")...)
	deny("the kubelet registers and updates its Node", "", "nodes", "", "", "", "create", "update")
	deny("the kubelet owns node status", "", "nodes", "status", "", "", "patch", "update")
	allow("Machine watcher watches Condition ConfigMaps (its informer is cluster-wide)", "", "configmaps", "", "", "", cached...)
	allow("activities/kube lists Condition ConfigMaps in kok-system", "", "configmaps", "", "kok-system", "", "list")
	deny("Condition ConfigMaps are written by the reporting operators", "", "configmaps", "", "kok-system", "", "create", "update", "patch", "delete")
	allow("activities/kube and activities/controlplane: Events on cluster-scoped objects go to default", "", "events", "", "default", "", "create")
	allow("leader election records Events on its Lease", "", "events", "", "kok-system", "", "create", "patch")
	deny("no Events anywhere else", "", "events", "", "kube-system", "", "create")
	allow("leader election creates the Lease", "coordination.k8s.io", "leases", "", "kok-system", "", "create")
	allow("leader election reads and renews its Lease", "coordination.k8s.io", "leases", "", "kok-system", "kok-manager", "get", "update")
	deny("no other Lease", "coordination.k8s.io", "leases", "", "kok-system", "someone-else", "get", "update")
	deny("no Lease outside kok-system", "coordination.k8s.io", "leases", "", "kube-system", "kok-manager", "get", "update", "create")
	allow("activities/pki EnsureClusterPKI reads and creates kok-cluster-<name> (uncached)", "", "namespaces", "", "", "", "get", "create")
	deny("namespaces are read uncached, and never deleted here", "", "namespaces", "", "", "", "list", "watch", "delete", "update", "patch")
	allow("activities/pki keeps the PKI (DeleteClusterPKI deletes it); activities/controlplane reads the admin kubeconfig", "", "secrets", "", clusterNS, "", "get", "list", "create", "update", "delete")
	allow("the kok provider applies (server-side: patch, create when new) and deletes its Secrets", "", "secrets", "", clusterNS, "", "patch")
	deny("Secrets are read uncached: a watch would stream every Secret of the cluster", "", "secrets", "", clusterNS, "", "watch")
	for _, res := range [][2]string{{"apps", "statefulsets"}, {"apps", "deployments"}, {"", "services"}} {
		allow("the kok provider applies, reads and deletes a control plane's workloads", res[0], res[1], "", clusterNS, "", "get", "list", "create", "patch", "delete")
		deny("the kok provider writes by server-side apply only", res[0], res[1], "", clusterNS, "", "update")
	}
	allow("the kok provider deletes etcd's volume claims and waits for them to go", "", "persistentvolumeclaims", "", clusterNS, "", "list", "delete")
	for _, res := range [][2]string{{"apps", "replicasets"}, {"apps", "controllerrevisions"}, {"", "pods"}} {
		allow("the kok provider waits for the dependents of its workloads to go, reads pods for status", res[0], res[1], "", clusterNS, "", "list")
	}
	deny("workloads are StatefulSets and Deployments; the manager never makes Pods itself", "", "pods", "", clusterNS, "", "create")
	deny("no shell into anything", "", "pods", "exec", clusterNS, "", "create")
	deny("no tokens for other identities", "", "serviceaccounts", "token", "kube-system", "default", "create")
	deny("no RBAC changes: they could grant anything", "rbac.authorization.k8s.io", "clusterroles", "", "", "", "create", "update", "escalate", "bind")
	deny("no RBAC changes: they could grant anything", "rbac.authorization.k8s.io", "rolebindings", "", clusterNS, "", "create")
	deny("CRDs are installed by whoever installs kok, not by kok-manager", "apiextensions.k8s.io", "customresourcedefinitions", "", "", "", "create", "update", "delete")
	return out
}

// agentAccess: kok-agent never talks to the Kubernetes API (DESIGN.md §2).
func agentAccess() []access {
	var out []access
	for _, r := range [][3]string{
		{"", "secrets", "kok-agent"}, {"", "configmaps", "kok-system"}, {"", "nodes", ""}, {"", "pods", ""},
		{"kok.dev", "machines", ""}, {"coordination.k8s.io", "leases", "kube-node-lease"},
	} {
		for _, v := range []string{"get", "list", "update"} {
			out = append(out, access{agentUser, v, r[0], r[1], "", r[2], "", false, "the agent talks only to Temporal"})
		}
	}
	return out
}

// TestDeployManifests renders every kustomization under deploy/ as `kubectl apply -k` does
// (kustomize's krusty, default load restrictions) and checks, without a server, that the
// manifests fit the code: each flag passed to kok-manager and kok-agent exists, each file a flag
// names is mounted from a Secret, every RBAC rule is explained by managerAccess, and the systemd
// unit only uses kok-agent flags and variables its env file defines.
func TestDeployManifests(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	builds := renderDeploy(t, root)

	t.Run("crds", func(t *testing.T) { testDeployCRDs(t, root, builds[deployCRDs]) })
	t.Run("manager", func(t *testing.T) { testManagerDeployment(t, builds[deployManager]) })
	t.Run("rbac", func(t *testing.T) { testRBACExplained(t, builds[deployManager]) })
	t.Run("agent", func(t *testing.T) { testAgentDaemonSet(t, builds[deployAgent]) })
	t.Run("systemd", func(t *testing.T) { testAgentUnit(t, filepath.Join(root, deployAgent)) })
	t.Run("example", func(t *testing.T) { testReferencesResolve(t, builds[deployExample]) })
}

// TestDeployDryRun applies every object of every kustomization under deploy/ to a real
// kube-apiserver with server-side apply and dryRun=All (validation, defaulting, admission,
// Pod Security included; nothing is stored), and asks the server's RBAC authorizer, through
// SubjectAccessReviews, whether the manager's and the agent's rules allow exactly what
// managerAccess and agentAccess say. For the reviews the RBAC objects are applied for real.
func TestDeployDryRun(t *testing.T) {
	root, err := harness.RepoRoot()
	require.NoError(t, err)
	builds := renderDeploy(t, root)
	env := harness.Start(t, harness.Options{})

	warnings := &warningLog{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = warnings
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	require.NoError(t, err)
	ctx := t.Context()

	// Namespaced objects can only be dry-run in a namespace that exists: create those the
	// manifests declare (after a dry run of their own) before anything else.
	for _, dir := range sortedKeys(builds) {
		for _, obj := range builds[dir] {
			if obj.GetKind() == "Namespace" {
				require.NoError(t, apply(ctx, c, obj, true), "%s: dry-run %s", dir, describe(obj))
				require.NoError(t, apply(ctx, c, obj, false), "%s: create %s", dir, describe(obj))
			}
		}
	}
	for _, dir := range sortedKeys(builds) {
		t.Run(dir, func(t *testing.T) {
			objs := builds[dir]
			require.NotEmpty(t, objs)
			for _, obj := range objs {
				warnings.reset()
				require.NoError(t, apply(ctx, c, obj, true), "dry-run %s", describe(obj))
				require.Empty(t, warnings.take(), "the API server warned about %s", describe(obj))
			}
		})
	}

	t.Run("rbac", func(t *testing.T) {
		for _, obj := range slices.Concat(builds[deployManager], builds[deployAgent]) {
			switch obj.GetKind() {
			case "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
				require.NoError(t, apply(ctx, c, obj, false), "apply %s", describe(obj))
			}
		}
		for _, a := range slices.Concat(managerAccess(), agentAccess()) {
			ns := strings.SplitN(strings.TrimPrefix(a.user, "system:serviceaccount:"), ":", 2)[0]
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   a.user,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: a.ns, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub, Name: a.name,
				},
			}}
			require.NoError(t, c.Create(ctx, sar), "review %s", a)
			if a.allowed {
				require.True(t, sar.Status.Allowed, "%s must be allowed (%s); the API server says: %s", a, a.why, sar.Status.Reason)
			} else {
				require.False(t, sar.Status.Allowed, "%s must be denied (%s); the API server allows it: %s", a, a.why, sar.Status.Reason)
			}
		}
	})
}

func apply(ctx context.Context, c client.Client, obj *unstructured.Unstructured, dryRun bool) error {
	opts := []client.ApplyOption{client.FieldOwner("kok-deploy-test")}
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()), opts...)
}

// warningLog collects the API server's warnings (deprecated fields, Pod Security violations of
// pod templates, ...).
type warningLog struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningLog) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningLog) reset() { w.take() }

func (w *warningLog) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// renderDeploy builds every kustomization under deploy/, keyed by its directory relative to root.
func renderDeploy(t *testing.T, root string) map[string][]*unstructured.Unstructured {
	t.Helper()
	builds := map[string][]*unstructured.Unstructured{}
	err := filepath.WalkDir(filepath.Join(root, "deploy"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		for _, name := range konfig.RecognizedKustomizationFileNames() {
			if _, err := os.Stat(filepath.Join(p, name)); err == nil {
				rel, err := filepath.Rel(root, p)
				if err != nil {
					return err
				}
				builds[filepath.ToSlash(rel)] = render(t, p)
				break
			}
		}
		return nil
	})
	require.NoError(t, err)
	for _, dir := range []string{deployCRDs, deployManager, deployAgent, deployExample} {
		require.Contains(t, builds, dir, "no kustomization in %s", dir)
	}
	return builds
}

// render is `kustomize build dir` with the defaults kubectl uses: files may only come from
// within each kustomization's own directory.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	var out []*unstructured.Unstructured
	for _, r := range m.Resources() {
		// Through JSON: kyaml's maps hold Go ints, which unstructured objects may not.
		raw, err := r.MarshalJSON()
		require.NoError(t, err, "%s: %s", dir, r.CurId())
		obj := &unstructured.Unstructured{}
		require.NoError(t, obj.UnmarshalJSON(raw), "%s: %s", dir, r.CurId())
		out = append(out, obj)
	}
	return out
}

func describe(obj *unstructured.Unstructured) string {
	if ns := obj.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", obj.GetKind(), ns, obj.GetName())
	}
	return fmt.Sprintf("%s %s", obj.GetKind(), obj.GetName())
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// find converts the one object of kind named name into out.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, out runtime.Object) {
	t.Helper()
	for _, obj := range objs {
		if obj.GetKind() == kind && obj.GetName() == name {
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out))
			return
		}
	}
	t.Fatalf("no %s %s in the rendered manifests", kind, name)
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

// testDeployCRDs: crds/Kustomization lists exactly the CRD files controller-gen wrote, and
// deploy/crds renders one CRD per file.
func testDeployCRDs(t *testing.T, root string, objs []*unstructured.Unstructured) {
	files, err := filepath.Glob(filepath.Join(root, "crds", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var want []string
	for _, f := range files {
		want = append(want, filepath.Base(f))
	}
	raw, err := os.ReadFile(filepath.Join(root, "crds", "Kustomization"))
	require.NoError(t, err)
	var k struct {
		Resources []string `json:"resources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &k))
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	require.Equal(t, want, got, "crds/Kustomization must list every CRD file in crds/, and nothing else")

	require.Len(t, objs, len(files))
	for _, obj := range objs {
		require.Equal(t, "CustomResourceDefinition", obj.GetKind())
	}
}

// testManagerDeployment parses the manager's arguments with kok-manager's own flag set and checks
// they agree with the rest of the Deployment and with the RBAC.
func testManagerDeployment(t *testing.T, objs []*unstructured.Unstructured) {
	var d appsv1.Deployment
	find(t, objs, "Deployment", "kok-manager", &d)
	spec := d.Spec.Template.Spec
	c := container(t, spec, "manager")

	var o manager.Options
	flags := pflag.NewFlagSet("kok-manager", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	o.AddFlags(flags)
	require.NoError(t, flags.Parse(c.Args), "kok-manager's flags")
	require.Empty(t, flags.Args(), "kok-manager takes no arguments")

	require.GreaterOrEqual(t, *d.Spec.Replicas, int32(2), "replicas for availability")
	require.True(t, o.LeaderElect, "several replicas need leader election")
	var le rbacv1.Role
	find(t, objs, "Role", "kok-manager-leader-election", &le)
	require.Equal(t, le.Namespace, o.LeaderElectionNamespace, "the leader-election Role's namespace")
	require.Equal(t, le.Namespace, d.Namespace)

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	require.Equal(t, fmt.Sprint(ports["metrics"]), port(t, o.MetricsAddr), "--metrics-bind-address and port metrics")
	require.Equal(t, fmt.Sprint(ports["health"]), port(t, o.ProbeAddr), "--health-probe-bind-address and port health")
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
	require.Equal(t, "health", c.LivenessProbe.HTTPGet.Port.String())
	require.Equal(t, "health", c.ReadinessProbe.HTTPGet.Port.String())

	require.True(t, *spec.SecurityContext.RunAsNonRoot)
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.NotNil(t, c.Resources.Requests.Cpu())
	require.False(t, c.Resources.Limits.Memory().IsZero())

	for flag, file := range map[string]string{
		"--temporal-tls-cert": o.Temporal.TLSCertFile, "--temporal-tls-key": o.Temporal.TLSKeyFile,
		"--temporal-tls-ca": o.Temporal.TLSCAFile, "--codec-key-file": o.Temporal.CodecKeyFile,
	} {
		secret, key := mountedSecretFile(t, spec, c, file)
		require.NotEmpty(t, secret, "%s %s", flag, file)
		require.NotEmpty(t, key, "%s %s", flag, file)
	}
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	return p
}

// mountedSecretFile says which Secret and key the container sees at file.
func mountedSecretFile(t *testing.T, spec corev1.PodSpec, c corev1.Container, file string) (secret, key string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		return secretVolumeFile(t, spec, m.Name, rel)
	}
	t.Fatalf("%s is on no volume of container %s", file, c.Name)
	return "", ""
}

// secretVolumeFile says which Secret and key are the file rel of volume name.
func secretVolumeFile(t *testing.T, spec corev1.PodSpec, name, rel string) (secret, key string) {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.Name != name {
			continue
		}
		require.NotNil(t, v.Secret, "volume %s is not a Secret", name)
		if len(v.Secret.Items) == 0 {
			return v.Secret.SecretName, rel
		}
		for _, it := range v.Secret.Items {
			if it.Path == rel {
				return v.Secret.SecretName, it.Key
			}
		}
		t.Fatalf("volume %s (Secret %s) has no item at %s", name, v.Secret.SecretName, rel)
	}
	t.Fatalf("no volume %s", name)
	return "", ""
}

// testRBACExplained fails on any rule that managerAccess does not list as allowed: a grant nobody
// can explain is not least privilege. Wildcards are refused outright.
func testRBACExplained(t *testing.T, objs []*unstructured.Unstructured) {
	allowed := managerAccess()
	bound := map[string]bool{} // "ClusterRole/name" or "Role/ns/name" bound to the manager
	for _, obj := range objs {
		switch obj.GetKind() {
		case "ClusterRoleBinding", "RoleBinding":
			var b rbacv1.RoleBinding // same fields as a ClusterRoleBinding
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &b))
			for _, s := range b.Subjects {
				require.Equal(t, rbacv1.ServiceAccountKind, s.Kind)
				require.Equal(t, managerUser, "system:serviceaccount:"+s.Namespace+":"+s.Name, "%s binds someone else", describe(obj))
			}
			key := "ClusterRole/" + b.RoleRef.Name
			if b.RoleRef.Kind == "Role" {
				key = "Role/" + b.Namespace + "/" + b.RoleRef.Name
			}
			bound[key] = true
		}
	}
	var roles int
	for _, obj := range objs {
		var ns string
		switch obj.GetKind() {
		case "ClusterRole":
		case "Role":
			ns = obj.GetNamespace()
		default:
			continue
		}
		roles++
		key := strings.TrimSuffix(obj.GetKind()+"/"+ns, "/") + "/" + obj.GetName()
		require.True(t, bound[key], "%s is bound to nobody", describe(obj))
		var r rbacv1.ClusterRole // a Role's rules have the same shape
		require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &r))
		for _, rule := range r.Rules {
			require.Empty(t, rule.NonResourceURLs, "%s", describe(obj))
			names := rule.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					for _, v := range rule.Verbs {
						for _, n := range names {
							require.NotContains(t, []string{g, res, v}, "*", "%s: no wildcards", describe(obj))
							resource, sub, _ := strings.Cut(res, "/")
							require.True(t, explained(allowed, v, g, resource, sub, ns, n),
								"%s grants %s %s (group %q) in %q to name %q, which managerAccess does not list as needed",
								describe(obj), v, res, g, ns, n)
						}
					}
				}
			}
		}
	}
	require.Positive(t, roles)
}

// explained: some allowed row asks for exactly this grant. A ClusterRole grant (ns "") is
// explained by a row in any namespace.
func explained(rows []access, verb, group, resource, sub, ns, name string) bool {
	for _, a := range rows {
		if a.allowed && a.verb == verb && a.group == group && a.resource == resource && a.sub == sub &&
			(ns == "" || a.ns == ns) && a.name == name {
			return true
		}
	}
	return false
}

// testAgentDaemonSet parses the agent's arguments with kok-agent's own flag set and checks the
// files they name are the pod's Secret volumes as the kubelet mounts them on the host.
func testAgentDaemonSet(t *testing.T, objs []*unstructured.Unstructured) {
	var ds appsv1.DaemonSet
	find(t, objs, "DaemonSet", "kok-agent", &ds)
	spec := ds.Spec.Template.Spec
	require.True(t, spec.HostPID, "nsenter --target 1 needs the host's PID namespace")
	require.True(t, spec.HostNetwork)
	require.NotNil(t, spec.AutomountServiceAccountToken)
	require.False(t, *spec.AutomountServiceAccountToken, "the agent never talks to the Kubernetes API")
	require.Equal(t, appsv1.OnDeleteDaemonSetStrategyType, ds.Spec.UpdateStrategy.Type)

	c := container(t, spec, "agent")
	require.Equal(t, "nsenter", c.Command[0])
	require.Equal(t, "--", c.Command[len(c.Command)-1])
	require.NotEmpty(t, c.Args)
	bin := c.Args[0]

	// The init container copies the image's binary to where the agent runs it from.
	require.Len(t, spec.InitContainers, 1)
	install := spec.InitContainers[0]
	require.Contains(t, strings.Join(install.Command, " "), "/host"+bin)
	var hostBin string
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostBin = v.HostPath.Path
		}
	}
	require.Equal(t, path.Dir(bin), hostBin)

	var o agent.Options
	flags := pflag.NewFlagSet("kok-agent", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	o.AddFlags(flags)
	require.NoError(t, flags.Parse(c.Args[1:]), "kok-agent's flags")
	require.Empty(t, flags.Args(), "kok-agent takes no arguments")
	require.Equal(t, "/", o.Root)
	require.False(t, o.Simulate)
	require.Equal(t, "$(NODE_NAME)", o.Host)
	require.Equal(t, port(t, o.MetricsAddr), c.LivenessProbe.HTTPGet.Port.String(), "liveness probe and --metrics-bind-address")

	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	require.Equal(t, "spec.nodeName", env["NODE_NAME"].ValueFrom.FieldRef.FieldPath)
	require.Equal(t, "metadata.uid", env["POD_UID"].ValueFrom.FieldRef.FieldPath)
	require.Equal(t, "$(KUBELET_ROOT_DIR)/pods/$(POD_UID)/volumes/kubernetes.io~secret", env["KOK_SECRETS"].Value)
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounted[m.Name] = true
	}
	for flag, file := range map[string]string{
		"--temporal-tls-cert": o.Temporal.TLSCertFile, "--temporal-tls-key": o.Temporal.TLSKeyFile,
		"--temporal-tls-ca": o.Temporal.TLSCAFile, "--codec-key-file": o.Temporal.CodecKeyFile,
	} {
		rel, ok := strings.CutPrefix(file, "$(KOK_SECRETS)/")
		require.True(t, ok, "%s %s: read Secrets where the kubelet mounts them on the host", flag, file)
		volume, item, _ := strings.Cut(rel, "/")
		require.True(t, mounted[volume], "%s: the kubelet mounts volume %s only if the container does", flag, volume)
		secretVolumeFile(t, spec, volume, item)
	}
}

var unitVarRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// testAgentUnit checks kok-agent.service: its ExecStart passes only flags kok-agent has, and every
// variable it uses is defined in kok-agent.env.example (and every one defined there is used).
func testAgentUnit(t *testing.T, dir string) {
	cmdline := execStart(t, filepath.Join(dir, "kok-agent.service"))
	require.NotContains(t, cmdline, `"`, "keep ExecStart free of quoting: this test splits on spaces")
	words := strings.Fields(cmdline)
	require.Equal(t, "/usr/local/bin/kok-agent", words[0])

	var o agent.Options
	flags := pflag.NewFlagSet("kok-agent", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	o.AddFlags(flags)
	require.NoError(t, flags.Parse(words[1:]), "kok-agent.service passes a flag kok-agent does not have")
	require.Empty(t, flags.Args(), "kok-agent takes no arguments")
	require.Equal(t, "/", o.Root)
	require.False(t, o.Simulate)

	defined := envFile(t, filepath.Join(dir, "kok-agent.env.example"))
	used := map[string]bool{}
	for _, m := range unitVarRE.FindAllStringSubmatch(cmdline, -1) {
		used[m[1]] = true
		require.Contains(t, defined, m[1], "ExecStart uses ${%s}, which kok-agent.env.example does not define", m[1])
	}
	for name := range defined {
		require.True(t, used[name], "kok-agent.env.example defines %s, which ExecStart does not use", name)
	}

	// With the example's values, the flags are what the agent accepts. (TLS and codec files do
	// not exist here; Validate is left to the agent's own tests.)
	flags = pflag.NewFlagSet("kok-agent", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	o = agent.Options{}
	o.AddFlags(flags)
	expanded := unitVarRE.ReplaceAllStringFunc(cmdline, func(v string) string { return defined[unitVarRE.FindStringSubmatch(v)[1]] })
	require.NoError(t, flags.Parse(strings.Fields(expanded)[1:]))
	o.Temporal.TLSCertFile, o.Temporal.TLSKeyFile, o.Temporal.TLSCAFile, o.Temporal.CodecKeyFile = "", "", "", ""
	require.NoError(t, o.Validate(), "kok-agent refuses the example's flags")
}

// execStart returns the unit's ExecStart command with continuation lines joined.
func execStart(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	var (
		cmd  []string
		in   bool
		seen int
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !in {
			rest, ok := strings.CutPrefix(line, "ExecStart=")
			if !ok {
				continue
			}
			seen++
			line = rest
		}
		body, cont := strings.CutSuffix(line, `\`)
		cmd = append(cmd, strings.TrimSpace(body))
		in = cont
	}
	require.NoError(t, sc.Err())
	require.Equal(t, 1, seen, "%s: one ExecStart", file)
	return strings.Join(cmd, " ")
}

// envFile reads systemd EnvironmentFile lines KEY=value, skipping comments and blank lines.
func envFile(t *testing.T, file string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	out := map[string]string{}
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, "%s: %q is not KEY=value", file, line)
		out[k] = v
	}
	return out
}

// testReferencesResolve: in a complete installation every Secret and ConfigMap a pod reads
// (environment and volumes) is part of the output and has the key read.
func testReferencesResolve(t *testing.T, objs []*unstructured.Unstructured) {
	data := map[string]map[string]bool{} // "Kind/ns/name" -> keys
	for _, obj := range objs {
		kind := obj.GetKind()
		if kind != "Secret" && kind != "ConfigMap" {
			continue
		}
		keys := map[string]bool{}
		for _, field := range []string{"data", "stringData"} {
			m, _, err := unstructured.NestedMap(obj.Object, field)
			require.NoError(t, err)
			for k := range m {
				keys[k] = true
			}
		}
		data[kind+"/"+obj.GetNamespace()+"/"+obj.GetName()] = keys
	}
	need := func(what, kind, ns, name, key string) {
		keys, ok := data[kind+"/"+ns+"/"+name]
		require.True(t, ok, "%s reads %s %s/%s, which the installation does not make", what, kind, ns, name)
		require.True(t, keys[key], "%s reads key %s of %s %s/%s, which has %v", what, key, kind, ns, name, sortedKeys(keys))
	}
	var pods int
	for _, obj := range objs {
		var spec corev1.PodSpec
		switch obj.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d))
			spec = d.Spec.Template.Spec
		case "DaemonSet":
			var d appsv1.DaemonSet
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d))
			spec = d.Spec.Template.Spec
		default:
			continue
		}
		pods++
		ns, what := obj.GetNamespace(), describe(obj)
		for _, c := range append(spec.InitContainers, spec.Containers...) {
			for _, e := range c.Env {
				switch {
				case e.ValueFrom == nil:
				case e.ValueFrom.SecretKeyRef != nil:
					need(what, "Secret", ns, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
				case e.ValueFrom.ConfigMapKeyRef != nil:
					need(what, "ConfigMap", ns, e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key)
				}
			}
		}
		for _, v := range spec.Volumes {
			if v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				_, ok := data["Secret/"+ns+"/"+v.Secret.SecretName]
				require.True(t, ok, "%s mounts Secret %s/%s, which the installation does not make", what, ns, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				need(what, "Secret", ns, v.Secret.SecretName, it.Key)
			}
		}
	}
	require.Equal(t, 2, pods, "kok-manager and kok-agent")
}
