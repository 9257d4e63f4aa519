package clusters

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/describe"
	"kok.dev/cmd/kok/app/get"
	"kok.dev/cmd/kok/app/kubeflags"
	"kok.dev/tests/harness"
)

// testPoll is how often the change commands look at the Cluster in tests: the simulated
// workflow below waits for each printed line before it writes the next status, so the interval
// only sets how fast the test runs, never what it sees.
const testPoll = 10 * time.Millisecond

func packageVersion(name, kube string) *kokv1.ClusterPackageVersion {
	image := func(component string) string {
		return "registry.example.com/" + component + "@sha256:" + strings.Repeat("a", 64)
	}
	var comps []kokv1.ControlPlaneComponent
	for _, c := range []kokv1.ControlPlaneComponentName{kokv1.ComponentEtcd, kokv1.ComponentKubeAPIServer, kokv1.ComponentKubeControllerManager, kokv1.ComponentKubeScheduler} {
		comps = append(comps, kokv1.ControlPlaneComponent{Name: c, Version: kube, Image: image(string(c))})
	}
	return &kokv1.ClusterPackageVersion{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       kokv1.ClusterPackageVersionSpec{KubernetesVersion: kube, Components: comps},
	}
}

// lines is the output of a command, line by line as it is written, for a simulated workflow to
// act on.
type lines struct {
	mu      sync.Mutex
	all     bytes.Buffer
	partial string
	ch      chan string
}

func newLines() *lines { return &lines{ch: make(chan string, 100)} }

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.Write(p)
	l.partial += string(p)
	for {
		i := strings.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.ch <- l.partial[:i]
		l.partial = l.partial[i+1:]
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.all.String()
}

// act is one move of the simulated Cluster workflow: once the command has printed after, it
// writes the status that set returns.
type act struct {
	after string
	set   func(*kokv1.Cluster)
}

// simulate plays the Cluster workflow's part: for each act, it waits for the command to print
// the act's line and then writes the status. Waiting for the line makes the run deterministic:
// the command has seen each status before the next one is written. It returns the first
// failure, or nil when every act was played.
func simulate(ctx context.Context, c client.Client, name string, out *lines, acts []act) <-chan error {
	done := make(chan error, 1)
	go func() {
		for _, a := range acts {
			if err := waitFor(ctx, out, a.after); err != nil {
				done <- err
				return
			}
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var cl kokv1.Cluster
				if err := c.Get(ctx, types.NamespacedName{Name: name}, &cl); err != nil {
					return err
				}
				a.set(&cl)
				cl.Status.ObservedGeneration = cl.Generation
				return c.Status().Update(ctx, &cl)
			})
			if err != nil {
				done <- fmt.Errorf("after %q: write status: %w", a.after, err)
				return
			}
		}
		done <- nil
	}()
	return done
}

func waitFor(ctx context.Context, out *lines, line string) error {
	for {
		select {
		case got := <-out.ch:
			if got == line {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("the command never printed %q; it printed:\n%s", line, out.String())
		}
	}
}

// running sets a settled status: Running at current, moved there from previous.
func running(current, previous string, conds ...metav1.Condition) func(*kokv1.Cluster) {
	return func(c *kokv1.Cluster) {
		c.Status.Phase, c.Status.CurrentPackageVersion, c.Status.PreviousPackageVersion = kokv1.ClusterRunning, current, previous
		c.Status.TargetPackageVersion, c.Status.Operation, c.Status.ReadyMasters = "", nil, 1
		c.Status.Conditions = nil
		for _, cond := range conds {
			cond.ObservedGeneration, cond.LastTransitionTime = c.Generation, metav1.Now()
			c.Status.Conditions = append(c.Status.Conditions, cond)
		}
	}
}

// moving sets an operation in flight towards target.
func moving(phase kokv1.ClusterPhase, typ kokv1.ClusterOperationType, target, step, msg string) func(*kokv1.Cluster) {
	return func(c *kokv1.Cluster) {
		now := metav1.Now()
		c.Status.Phase, c.Status.TargetPackageVersion = phase, target
		c.Status.Operation = &kokv1.ClusterOperation{Type: typ, Step: step, Message: msg, CanaryHost: "m1", StartedAt: &now}
	}
}

// TestCommandsAgainstTheAPIServer runs the Cluster commands against a real kube-apiserver
// holding Clusters whose status the test writes as the Cluster workflow would.
func TestCommandsAgainstTheAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	env := harness.Start(t, harness.Options{})
	ctx := context.Background()
	c := env.Client

	for _, v := range []*kokv1.ClusterPackageVersion{
		packageVersion("v1.36.3", "v1.36.3"), packageVersion("v1.37.2", "v1.37.2"),
		packageVersion("v1.38.0", "v1.38.0"), packageVersion("v1.38.1", "v1.38.1"),
	} {
		require.NoError(t, c.Create(ctx, v))
	}
	invalid := &kokv1.ClusterPackageVersion{}
	require.NoError(t, c.Get(ctx, types.NamespacedName{Name: "v1.38.1"}, invalid))
	invalid.Status = kokv1.ClusterPackageVersionStatus{Phase: kokv1.PackageVersionInvalid, Conditions: []metav1.Condition{{
		Type: kokv1.ConditionReady, Status: metav1.ConditionFalse, Reason: kokv1.ReasonChecksumMismatch,
		Message: "kube-apiserver: sha256 differs", LastTransitionTime: metav1.Now(),
	}}}
	require.NoError(t, c.Status().Update(ctx, invalid))

	prod := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"env": "prod"}},
		Spec:       kokv1.ClusterSpec{PackageVersion: "v1.37.2", Masters: kokv1.ClusterMasters{Count: 1, Hosts: []string{"m1"}}},
	}
	require.NoError(t, c.Create(ctx, prod))
	prod.Status = kokv1.ClusterStatus{
		Phase: kokv1.ClusterRunning, CurrentPackageVersion: "v1.37.2", PreviousPackageVersion: "v1.36.3",
		Endpoint: "https://10.0.0.1:6443", ReadyMasters: 1, ObservedGeneration: prod.Generation,
		Masters: []kokv1.MasterStatus{{Host: "m1", Phase: kokv1.MasterRunning, Ready: true, Components: []kokv1.MasterComponentStatus{
			{Name: kokv1.ComponentKubeAPIServer, Version: "v1.37.2", Ready: true},
		}}},
		Workflow: &kokv1.WorkflowRef{ID: "Cluster/prod", URL: "http://127.0.0.1:8233/namespaces/kok/workflows/Cluster%2Fprod"},
	}
	require.NoError(t, c.Status().Update(ctx, prod))

	creating := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: "new"},
		Spec:       kokv1.ClusterSpec{PackageVersion: "v1.37.2", Provider: kokv1.ProviderKok},
	}
	require.NoError(t, c.Create(ctx, creating))
	creating.Status = kokv1.ClusterStatus{Phase: kokv1.ClusterCreating, TargetPackageVersion: "v1.37.2",
		Operation: &kokv1.ClusterOperation{Type: kokv1.ClusterOperationCreate, Step: "start etcd"}}
	require.NoError(t, c.Status().Update(ctx, creating))

	// The admin kubeconfig where kok's PKI writes it, and an Event about prod beside two that
	// are not: one about Cluster API's Cluster of the same name, one about a Machine.
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kok-cluster-prod"}}))
	require.NoError(t, c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kok-cluster-prod", Name: "prod-admin-kubeconfig"},
		Data:       map[string][]byte{"kubeconfig": []byte("apiVersion: v1\nkind: Config\n# prod admin\n")},
	}))
	for name, ref := range map[string]corev1.ObjectReference{
		"prod.upgraded": {APIVersion: "kok.dev/v1alpha1", Kind: "Cluster", Name: "prod", UID: prod.UID},
		"prod.capi":     {APIVersion: "cluster.x-k8s.io/v1beta1", Kind: "Cluster", Name: "prod"},
		"prod.machine":  {APIVersion: "kok.dev/v1alpha1", Kind: "Machine", Name: "prod"},
	} {
		now := metav1.Now()
		require.NoError(t, c.Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: name},
			InvolvedObject: ref, Type: corev1.EventTypeNormal, Reason: "MasterUpgraded",
			Message: "event " + name, Source: corev1.EventSource{Component: "kok-cluster-workflow"},
			FirstTimestamp: now, LastTimestamp: now, Count: 1,
		}))
	}

	run := func(cmd *cobra.Command, out io.Writer, args ...string) (string, error) {
		var errOut bytes.Buffer
		if out == nil {
			out = &bytes.Buffer{}
		}
		cmd.SetArgs(append(args, "--kubeconfig", env.Kubeconfig))
		cmd.SetOut(out)
		cmd.SetErr(&errOut)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.ExecuteContext(ctx)
		return fmt.Sprint(out), err
	}
	getCmd := func() *cobra.Command { return get.NewCommand(NewGetCommand) }
	describeCmd := func() *cobra.Command { return describe.NewCommand(NewDescribeCommand) }
	specOf := func(name string) string {
		var cl kokv1.Cluster
		require.NoError(t, c.Get(ctx, types.NamespacedName{Name: name}, &cl))
		return cl.Spec.PackageVersion
	}

	t.Run("get", func(t *testing.T) {
		out, err := run(getCmd(), nil, "clusters")
		require.NoError(t, err)
		require.Regexp(t, regexp.MustCompile(`^NAME +PHASE +VERSION +TARGET +MASTERS +READY +ENDPOINT +PROVIDER +AGE\n`+
			`new +Creating +<none> +v1\.37\.2 +1 +0 +<none> +kok +\d+s\n`+
			`prod +Running +v1\.37\.2 +<none> +1 +1 +https://10\.0\.0\.1:6443 +process +\d+s\n$`), out)

		out, err = run(getCmd(), nil, "kc", "-l", "env=prod", "-o", "wide")
		require.NoError(t, err)
		require.Regexp(t, `\nprod +Running .* <none> +http://127\.0\.0\.1:8233/namespaces/kok/workflows/Cluster%2Fprod\n$`, out)

		out, err = run(getCmd(), nil, "cluster", "prod", "-o", "yaml")
		require.NoError(t, err)
		var back kokv1.Cluster
		require.NoError(t, yaml.UnmarshalStrict([]byte(out), &back))
		require.Equal(t, "Cluster", back.Kind)
		require.Equal(t, prod.Status, back.Status)

		_, err = run(getCmd(), nil, "clusters", "nope")
		require.EqualError(t, err, `cluster "nope" not found on `+strings.TrimSuffix(env.Config.Host, "/")+` (context "envtest"); kok get clusters lists them`)
	})

	t.Run("describe", func(t *testing.T) {
		out, err := run(describeCmd(), nil, "cluster", "prod")
		require.NoError(t, err)
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`\nMasters: +1 on m1, 1 ready\n`),
			regexp.MustCompile(`\nPackage Versions:\n  Spec: +v1\.37\.2\n  Current: +v1\.37\.2\n  Previous: +v1\.36\.3\n  Target: +<none>\n`),
			regexp.MustCompile(`\n  m1 +Running +true +kube-apiserver +v1\.37\.2 +true\n`),
			regexp.MustCompile(`\nEvents:\n  TYPE +REASON +AGE +FROM +MESSAGE\n  Normal +MasterUpgraded +\d+s +kok-cluster-workflow +event prod\.upgraded\nWorkflow:\n`),
			regexp.MustCompile(`\n  Web UI: +http://127\.0\.0\.1:8233/namespaces/kok/workflows/Cluster%2Fprod\n`),
		} {
			require.Regexp(t, want, out)
		}
		_, err = run(describeCmd(), nil, "kc", "nope")
		require.ErrorContains(t, err, `cluster "nope" not found on `)
	})

	t.Run("kubeconfig", func(t *testing.T) {
		out, err := run(NewKubeconfigCommand(), nil, "prod")
		require.NoError(t, err)
		require.Equal(t, "apiVersion: v1\nkind: Config\n# prod admin\n", out)

		// The Secret the status names wins over the default place.
		require.NoError(t, c.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kok-cluster-prod", Name: "rotated"},
			Data:       map[string][]byte{"config": []byte("# rotated\n")},
		}))
		var cl kokv1.Cluster
		require.NoError(t, c.Get(ctx, types.NamespacedName{Name: "prod"}, &cl))
		cl.Status.KubeconfigSecretRef = &kokv1.SecretKeyRef{Namespace: "kok-cluster-prod", Name: "rotated", Key: "config"}
		require.NoError(t, c.Status().Update(ctx, &cl))
		out, err = run(NewKubeconfigCommand(), nil, "prod")
		require.NoError(t, err)
		require.Equal(t, "# rotated\n", out)

		_, err = run(NewKubeconfigCommand(), nil, "new")
		require.EqualError(t, err, `cluster "new" has no admin kubeconfig yet (phase Creating): wait for it to be Running`)
	})

	t.Run("refused versions", func(t *testing.T) {
		_, err := run(newClusterCommand(testPoll), nil, "upgrade", "prod", "--to", "v1.39.0")
		require.EqualError(t, err, `ClusterPackageVersion "v1.39.0" not found on `+strings.TrimSuffix(env.Config.Host, "/")+
			` (context "envtest"): there are v1.36.3, v1.37.2, v1.38.0, v1.38.1`)
		_, err = run(newClusterCommand(testPoll), nil, "upgrade", "prod", "--to", "v1.38.1")
		require.EqualError(t, err, `ClusterPackageVersion "v1.38.1" is Invalid (kube-apiserver: sha256 differs): choose another`)
		_, err = run(newClusterCommand(testPoll), nil, "upgrade", "prod")
		require.ErrorContains(t, err, "name the version to upgrade to: kok cluster upgrade NAME --to VERSION")
		_, err = run(newClusterCommand(testPoll), nil, "rollback", "new")
		require.EqualError(t, err, `cluster "new" has no version to roll back to: it is being created at v1.37.2 and runs no version yet`)
		require.Equal(t, "v1.37.2", specOf("prod"))
	})

	t.Run("upgrade, rollback, failed upgrade", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()

		out := newLines()
		sim := simulate(tctx, c, "prod", out, []act{
			{after: "Running at v1.37.2", set: moving(kokv1.ClusterUpgrading, kokv1.ClusterOperationUpgrade, "v1.38.0", "canary master m1", "etcd v1.37.2 -> v1.38.0")},
			{after: `Upgrading: Upgrade step "canary master m1" (canary m1): etcd v1.37.2 -> v1.38.0`,
				set: moving(kokv1.ClusterUpgrading, kokv1.ClusterOperationUpgrade, "v1.38.0", "canary master m1", "waiting up to 5m0s for m1 to be healthy at v1.38.0")},
			{after: `Upgrading: Upgrade step "canary master m1" (canary m1): waiting up to 5m0s for m1 to be healthy at v1.38.0`,
				set: running("v1.38.0", "v1.37.2")},
		})
		_, err := run(newClusterCommand(testPoll), out, "upgrade", "prod", "--to", "v1.38.0")
		require.NoError(t, err)
		require.NoError(t, <-sim)
		require.Equal(t, `cluster prod: spec.packageVersion v1.37.2 -> v1.38.0 (generation 2)
Running at v1.37.2
Upgrading: Upgrade step "canary master m1" (canary m1): etcd v1.37.2 -> v1.38.0
Upgrading: Upgrade step "canary master m1" (canary m1): waiting up to 5m0s for m1 to be healthy at v1.38.0
Running at v1.38.0
cluster prod runs v1.38.0
`, out.String())

		// Without --to, a rollback returns to the version the cluster ran before.
		out = newLines()
		sim = simulate(tctx, c, "prod", out, []act{
			{after: "Running at v1.38.0", set: moving(kokv1.ClusterRollingBack, kokv1.ClusterOperationRollback, "v1.37.2", "canary master m1", "kube-apiserver v1.38.0 -> v1.37.2")},
			{after: `RollingBack: Rollback step "canary master m1" (canary m1): kube-apiserver v1.38.0 -> v1.37.2`, set: running("v1.37.2", "v1.38.0")},
		})
		_, err = run(newClusterCommand(testPoll), out, "rollback", "prod")
		require.NoError(t, err)
		require.NoError(t, <-sim)
		require.Equal(t, `cluster prod: spec.packageVersion v1.38.0 -> v1.37.2, the version it ran before (generation 3)
Running at v1.38.0
RollingBack: Rollback step "canary master m1" (canary m1): kube-apiserver v1.38.0 -> v1.37.2
Running at v1.37.2
cluster prod runs v1.37.2
`, out.String())

		// An upgrade whose canary fails its health check is rolled back: the command fails
		// with the Ready condition's message.
		out = newLines()
		sim = simulate(tctx, c, "prod", out, []act{
			{after: "Running at v1.37.2", set: moving(kokv1.ClusterUpgrading, kokv1.ClusterOperationUpgrade, "v1.38.0", "canary master m1", "waiting up to 5m0s for m1 to be healthy at v1.38.0")},
			{after: `Upgrading: Upgrade step "canary master m1" (canary m1): waiting up to 5m0s for m1 to be healthy at v1.38.0`,
				set: moving(kokv1.ClusterRollingBack, kokv1.ClusterOperationRollback, "v1.38.0", "roll back m1", "kube-apiserver v1.38.0 -> v1.37.2")},
			{after: `RollingBack: Rollback step "roll back m1" (canary m1): kube-apiserver v1.38.0 -> v1.37.2`,
				set: running("v1.37.2", "v1.38.0", metav1.Condition{Type: kokv1.ConditionReady, Status: metav1.ConditionTrue, Reason: kokv1.ReasonRolledBack,
					Message: "Upgrade to v1.38.0 failed: m1: kube-apiserver not ready within 5m0s"})},
		})
		_, err = run(newClusterCommand(testPoll), out, "upgrade", "prod", "--to", "v1.38.0")
		require.EqualError(t, err, `cluster "prod" settled Running at v1.37.2, not v1.38.0: RolledBack: Upgrade to v1.38.0 failed: m1: kube-apiserver not ready within 5m0s`)
		require.NoError(t, <-sim)
		require.Equal(t, `cluster prod: spec.packageVersion v1.37.2 -> v1.38.0 (generation 4)
Running at v1.37.2
Upgrading: Upgrade step "canary master m1" (canary m1): waiting up to 5m0s for m1 to be healthy at v1.38.0
RollingBack: Rollback step "roll back m1" (canary m1): kube-apiserver v1.38.0 -> v1.37.2
Running at v1.37.2
`, out.String())
	})

	t.Run("no wait, and a timeout", func(t *testing.T) {
		out, err := run(newClusterCommand(testPoll), nil, "rollback", "prod", "--to", "v1.36.3", "--wait=false")
		require.NoError(t, err)
		require.Equal(t, "cluster prod: spec.packageVersion v1.38.0 -> v1.36.3 (generation 5)\n", out)
		require.Equal(t, "v1.36.3", specOf("prod"))

		// Nobody acts on this edit: the command gives up after --timeout and says where
		// the cluster stands.
		out, err = run(newClusterCommand(testPoll), nil, "upgrade", "prod", "--to", "v1.37.2", "--timeout", "100ms")
		require.EqualError(t, err, `timed out after 100ms waiting for cluster "prod" to run v1.37.2: it is Running at v1.37.2; the change carries on: kok describe cluster prod shows it, or run again with a longer --timeout`)
		require.Equal(t, "cluster prod: spec.packageVersion v1.36.3 -> v1.37.2 (generation 6)\nRunning at v1.37.2\n", out)

		// Interrupted (Ctrl-C), the command stops following and says the change goes on.
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		lines := newLines()
		go func() {
			if waitFor(cctx, lines, "Running at v1.37.2") == nil {
				cancel()
			}
		}()
		cmd := newClusterCommand(testPoll)
		cmd.SetArgs([]string{"upgrade", "prod", "--to", "v1.37.2", "--kubeconfig", env.Kubeconfig})
		cmd.SetOut(lines)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		require.EqualError(t, cmd.ExecuteContext(cctx), `stopped following cluster "prod" (context canceled); its change to v1.37.2 carries on: kok describe cluster prod shows it`)
		require.Equal(t, "cluster prod: spec.packageVersion is v1.37.2 already (generation 6)\nRunning at v1.37.2\n", lines.String())
	})

	t.Run("the edit retries on conflict", func(t *testing.T) {
		// The Cluster workflow writes the status between the command's read and its edit,
		// twice: the status shares the resourceVersion, so the edit conflicts and is retried.
		ww, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
		require.NoError(t, err)
		raced := 0
		racy := interceptor.NewClient(ww, interceptor.Funcs{
			Update: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
				if raced < 2 {
					raced++
					var now kokv1.Cluster
					require.NoError(t, c.Get(ctx, types.NamespacedName{Name: obj.GetName()}, &now))
					now.Status.RecentAutoRecoveries++
					require.NoError(t, c.Status().Update(ctx, &now))
				}
				return cl.Update(ctx, obj, opts...)
			},
		})
		var out bytes.Buffer
		err = change(ctx, &out, io.Discard, &kubeflags.Cluster{Client: racy, Server: env.Config.Host, Context: "envtest"}, "prod",
			testPoll, followFlags{}, func(*kokv1.Cluster) (string, string, error) { return "v1.38.0", "", nil })
		require.NoError(t, err)
		require.Equal(t, 2, raced)
		require.Equal(t, "cluster prod: spec.packageVersion v1.37.2 -> v1.38.0 (generation 7)\n", out.String())
		require.Equal(t, "v1.38.0", specOf("prod"))
	})

	t.Run("resolve", func(t *testing.T) {
		stuck := &kokv1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: "stuck"},
			Spec:       kokv1.ClusterSpec{PackageVersion: "v1.37.2", Masters: kokv1.ClusterMasters{Count: 1, Hosts: []string{"m1"}}},
		}
		require.NoError(t, c.Create(ctx, stuck))
		stuck.Status = kokv1.ClusterStatus{Phase: kokv1.ClusterWaitingForHuman, Conditions: []metav1.Condition{{
			Type: kokv1.ConditionReady, Status: metav1.ConditionFalse, Reason: kokv1.ReasonRecoveryLimitReached,
			Message: "masters [m1] stay unhealthy after 3 automatic recoveries", LastTransitionTime: metav1.Now(),
		}}}
		require.NoError(t, c.Status().Update(ctx, stuck))
		annotation := func() string {
			var cl kokv1.Cluster
			require.NoError(t, c.Get(ctx, types.NamespacedName{Name: "stuck"}, &cl))
			return cl.Annotations[kokv1.AnnotationResolve]
		}

		out, err := run(NewClusterCommand(), nil, "resolve", "stuck")
		require.NoError(t, err)
		first := annotation()
		require.NotEmpty(t, first)
		require.Equal(t, "cluster stuck: kok.dev/resolve="+first+"\nit waited for: masters [m1] stay unhealthy after 3 automatic recoveries\n", out)

		// Each run writes a new value: each resolves one wait.
		var errOut bytes.Buffer
		require.NoError(t, resolve(ctx, io.Discard, &errOut, &kubeflags.Cluster{Client: c, Server: env.Config.Host, Context: "envtest"}, "stuck", time.Now().Add(time.Second)))
		require.NotEqual(t, first, annotation())
		require.Empty(t, errOut.String())

		// A Cluster that waits for nothing: the value is written, and the command says it resolves nothing.
		errOut.Reset()
		require.NoError(t, resolve(ctx, io.Discard, &errOut, &kubeflags.Cluster{Client: c, Server: env.Config.Host, Context: "envtest"}, "prod", time.Now()))
		require.Contains(t, errOut.String(), "cluster prod is Running, not waiting for a human")

		_, err = run(NewClusterCommand(), nil, "resolve", "absent")
		require.Error(t, err)
	})
}
