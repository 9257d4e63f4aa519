package integration

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/tests/harness"
)

// Digests of artifacts that the API server only checks for form.
const (
	sha1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	sha2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// refusal is what the API server must answer: an Invalid error whose causes include field with a
// message containing message.
type refusal struct {
	field   string
	message string
}

// createCase is an object the API server must refuse on create.
type createCase struct {
	name string
	obj  client.Object
	want []refusal
}

// updateCase is a valid object, created first, and an edit the API server must refuse.
type updateCase struct {
	name string
	obj  client.Object
	edit func(client.Object)
	want []refusal
}

// TestValidation submits valid and invalid objects of every kok kind to a real kube-apiserver
// carrying the CRDs from crds/, and checks each refusal names the field and says what is wrong.
func TestValidation(t *testing.T) {
	env := harness.Start(t, harness.Options{})
	c := env.Client

	t.Run("valid", func(t *testing.T) { testValidObjects(t, c) })
	t.Run("kubectl", func(t *testing.T) { testKubectlColumns(t, env) })
	t.Run("create", func(t *testing.T) {
		for _, tc := range invalidCreates() {
			t.Run(tc.name, func(t *testing.T) {
				err := c.Create(t.Context(), tc.obj)
				t.Log(err)
				requireRefused(t, err, tc.want...)
			})
		}
	})
	t.Run("update", func(t *testing.T) {
		for _, tc := range invalidUpdates() {
			t.Run(tc.name, func(t *testing.T) {
				ctx := t.Context()
				require.NoError(t, c.Create(ctx, tc.obj))
				tc.edit(tc.obj)
				err := c.Update(ctx, tc.obj)
				t.Log(err)
				requireRefused(t, err, tc.want...)
			})
		}
	})
	t.Run("allowed updates", func(t *testing.T) { testAllowedUpdates(t, c) })
}

// requireRefused checks err is an Invalid refusal carrying every wanted cause.
func requireRefused(t *testing.T, err error, want ...refusal) {
	t.Helper()
	require.Error(t, err, "the API server accepted an invalid object")
	require.True(t, apierrors.IsInvalid(err), "want an Invalid refusal, got: %v", err)
	var status apierrors.APIStatus
	require.True(t, errors.As(err, &status))
	details := status.Status().Details
	require.NotNil(t, details, "refusal without details: %v", err)
	for _, w := range want {
		require.ErrorContains(t, err, w.message)
		found := false
		for _, cause := range details.Causes {
			if cause.Field == w.field && strings.Contains(cause.Message, w.message) {
				found = true
				break
			}
		}
		require.True(t, found, "no cause on field %q saying %q in: %v", w.field, w.message, err)
	}
}

func testValidObjects(t *testing.T, c client.Client) {
	ctx := t.Context()
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	ready := metav1.Condition{
		Type: kokv1.ConditionReady, Status: metav1.ConditionTrue, Reason: kokv1.ReasonSucceeded,
		Message: "checked by the validation test", LastTransitionTime: now, ObservedGeneration: 1,
	}
	workflow := &kokv1.WorkflowRef{ID: "kind/cluster/name", RunID: "run-1", URL: "http://127.0.0.1:8233/x"}

	t.Run("ClusterPackageVersion", func(t *testing.T) {
		obj := validCPV("v1.37.2")
		require.NoError(t, c.Create(ctx, obj))
		require.Equal(t, int32(10), obj.Spec.Components[0].HealthCheck.PeriodSeconds, "probe defaults")
		obj.Status = kokv1.ClusterPackageVersionStatus{
			Phase: kokv1.PackageVersionAvailable, Conditions: []metav1.Condition{ready}, ObservedGeneration: 1,
		}
		require.NoError(t, c.Status().Update(ctx, obj))
		requireStatusPhase(t, c, obj, string(kokv1.PackageVersionAvailable), func() string { return string(obj.Status.Phase) })
	})
	t.Run("Cluster", func(t *testing.T) {
		obj := validCluster("prod-a")
		require.NoError(t, c.Create(ctx, obj))
		require.Equal(t, kokv1.ProviderProcess, obj.Spec.Provider)
		require.Equal(t, kokv1.DeletionPolicyDelete, obj.Spec.DeletionPolicy)
		require.Equal(t, "10.96.0.0/12", obj.Spec.Network.ServiceCIDR)
		require.Equal(t, int32(6443), obj.Spec.Network.APIServerPort)
		require.Equal(t, 5*time.Minute, obj.Spec.Upgrade.HealthTimeout.Duration)
		require.True(t, *obj.Spec.Upgrade.AutoRollback)
		require.Equal(t, int32(3), *obj.Spec.Health.MaxAutoRecoveries)
		obj.Status = kokv1.ClusterStatus{
			Phase:                 kokv1.ClusterUpgrading,
			CurrentPackageVersion: "v1.37.1",
			TargetPackageVersion:  "v1.37.2",
			Endpoint:              "https://10.0.0.1:6443",
			KubeconfigSecretRef:   &kokv1.SecretKeyRef{Namespace: "kok-system", Name: "prod-a-kubeconfig", Key: "value"},
			Masters: []kokv1.MasterStatus{{
				Host: "m1", Phase: kokv1.MasterRunning, Ready: true,
				Components: []kokv1.MasterComponentStatus{{Name: kokv1.ComponentEtcd, Version: "v3.7.0", Ready: true}},
			}},
			ReadyMasters: 1,
			Operation: &kokv1.ClusterOperation{
				Type: kokv1.ClusterOperationUpgrade, Step: "upgrade canary master", StartedAt: &now, CanaryHost: "m1",
			},
			Workflow: workflow, Conditions: []metav1.Condition{ready}, ObservedGeneration: 1,
		}
		require.NoError(t, c.Status().Update(ctx, obj))
		requireStatusPhase(t, c, obj, string(kokv1.ClusterUpgrading), func() string { return string(obj.Status.Phase) })

		kok := validCluster("hosted-a")
		kok.Spec.Provider = kokv1.ProviderKok
		kok.Spec.Masters = kokv1.ClusterMasters{Count: 3}
		require.NoError(t, c.Create(ctx, kok), "provider kok needs no hosts")
	})
	t.Run("MachinePackageVersion", func(t *testing.T) {
		obj := validMPV("containerd", "1.7.2")
		require.NoError(t, c.Create(ctx, obj))
		require.Equal(t, kokv1.PackageComponent, obj.Spec.Type)
		require.Equal(t, kokv1.InstallerLocal, obj.Spec.Installer)
		require.Equal(t, int32(0o644), *obj.Spec.ConfigFiles[0].Mode)
		require.Equal(t, kokv1.RestartAlways, obj.Spec.Service.RestartPolicy)
		obj.Status = kokv1.MachinePackageVersionStatus{
			Phase: kokv1.PackageVersionAvailable, Conditions: []metav1.Condition{ready}, ObservedGeneration: 1,
		}
		require.NoError(t, c.Status().Update(ctx, obj))
		requireStatusPhase(t, c, obj, string(kokv1.PackageVersionAvailable), func() string { return string(obj.Status.Phase) })

		setting := &kokv1.MachinePackageVersion{
			ObjectMeta: metav1.ObjectMeta{Name: "ip-forward-1"},
			Spec: kokv1.MachinePackageVersionSpec{
				Package: "ip-forward", Version: "1", Type: kokv1.PackageSystemSetting,
				Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
			},
		}
		require.NoError(t, c.Create(ctx, setting), "a SystemSetting needs no artifact")
	})
	t.Run("Machine", func(t *testing.T) {
		obj := validMachine("node-1")
		require.NoError(t, c.Create(ctx, obj))
		require.Equal(t, 15*time.Minute, obj.Spec.DriftCheckInterval.Duration)
		require.Equal(t, kokv1.GateContinuous, obj.Spec.ReadinessGates[0].Mode)
		require.Equal(t, "node-1", obj.HostName(), "host defaults to the Machine's name")
		obj.Status = kokv1.MachineStatus{
			Phase: kokv1.MachineReady, Schedulable: true, Versions: "containerd=1.7.2,kubelet=v1.37.2",
			Components: []kokv1.MachineComponentStatus{{
				Name: "containerd", Version: "1.7.2", Phase: kokv1.ComponentRunning, LastTransitionTime: &now,
			}},
			Host:     &kokv1.HostFacts{OS: "Debian GNU/Linux 13", Kernel: "6.12.0", Arch: "amd64"},
			Workflow: workflow, Conditions: []metav1.Condition{ready}, ObservedGeneration: 1,
		}
		require.NoError(t, c.Status().Update(ctx, obj))
		requireStatusPhase(t, c, obj, string(kokv1.MachineReady), func() string { return string(obj.Status.Phase) })

		bare := &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "node-bare"}}
		require.NoError(t, c.Create(ctx, bare), "a Machine with an empty spec")
		require.Equal(t, kokv1.DeletionPolicyDelete, bare.Spec.DeletionPolicy)
	})
	t.Run("NodeRollout", func(t *testing.T) {
		obj := validRollout("containerd-1-7-2")
		require.NoError(t, c.Create(ctx, obj))
		require.Equal(t, int32(1), obj.Spec.Strategy.Canary.Count, "every rollout starts with a canary")
		require.Equal(t, kokv1.ApprovalAfterCanary, obj.Spec.Strategy.Approval)
		require.Equal(t, kokv1.FailurePause, obj.Spec.OnFailure)
		obj.Status = kokv1.NodeRolloutStatus{
			Phase:        kokv1.NodeRolloutProgressing,
			Counts:       kokv1.RolloutCounts{Total: 100, Updated: 10, Failed: 1, InProgress: 10},
			CurrentBatch: 2, TotalBatches: 10, FailedMachines: []string{"node-7"}, Message: "batch 2 of 10",
			StartedAt: &now, Workflow: workflow, Conditions: []metav1.Condition{ready}, ObservedGeneration: 1,
		}
		require.NoError(t, c.Status().Update(ctx, obj))
		requireStatusPhase(t, c, obj, string(kokv1.NodeRolloutProgressing), func() string { return string(obj.Status.Phase) })
	})
	t.Run("NodeFault", func(t *testing.T) {
		obj := validFault("node-1-disk")
		require.NoError(t, c.Create(ctx, obj))
		require.Equal(t, kokv1.RepairAuto, obj.Spec.Repair.Action)
		require.Equal(t, 48*time.Hour, obj.Spec.Repair.EscalateAfter.Duration)
		require.Equal(t, kokv1.SeverityWarning, obj.Spec.Severity)
		obj.Status = kokv1.NodeFaultStatus{
			Phase: kokv1.NodeFaultEscalated, Attempts: 2, EscalatedAt: &now, Message: "disk replacement needed",
			Workflow: workflow, Conditions: []metav1.Condition{ready}, ObservedGeneration: 1,
		}
		require.NoError(t, c.Status().Update(ctx, obj))
		requireStatusPhase(t, c, obj, string(kokv1.NodeFaultEscalated), func() string { return string(obj.Status.Phase) })
	})
	t.Run("RateLimitPolicy", func(t *testing.T) {
		obj := validPolicy("reboots")
		require.NoError(t, c.Create(ctx, obj))
		obj.Status = kokv1.RateLimitPolicyStatus{
			Phase: kokv1.RateLimitCircuitOpen, InFlight: 3, UsedInWindow: 7, CircuitOpen: true, HealthyPercent: 70,
			Conditions: []metav1.Condition{ready}, ObservedGeneration: 1,
		}
		require.NoError(t, c.Status().Update(ctx, obj))
		requireStatusPhase(t, c, obj, string(kokv1.RateLimitCircuitOpen), func() string { return string(obj.Status.Phase) })
	})
}

// testKubectlColumns checks what a user sees: the printer columns, short names and the kok
// category, on the objects testValidObjects created.
func testKubectlColumns(t *testing.T, env *harness.Env) {
	bins, err := harness.K8sBinDir()
	require.NoError(t, err)
	cacheDir := t.TempDir()
	kubectl := func(args ...string) string {
		t.Helper()
		args = append([]string{"--kubeconfig", env.Kubeconfig, "--cache-dir", cacheDir}, args...)
		out, err := exec.CommandContext(t.Context(), filepath.Join(bins, "kubectl"), args...).CombinedOutput()
		require.NoError(t, err, "kubectl %s: %s", strings.Join(args, " "), out)
		return string(out)
	}

	lines := strings.Split(strings.TrimSpace(kubectl("get", "machines", "node-1")), "\n")
	require.Len(t, lines, 2)
	require.Equal(t, []string{"NAME", "PHASE", "VERSIONS", "SCHEDULABLE", "AGE"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"node-1", "Ready", "containerd=1.7.2,kubelet=v1.37.2", "true"}, strings.Fields(lines[1])[:4])

	lines = strings.Split(strings.TrimSpace(kubectl("get", "kc", "prod-a")), "\n")
	require.Equal(t, []string{"NAME", "PHASE", "VERSION", "MASTERS", "READY", "ENDPOINT", "AGE"}, strings.Fields(lines[0]))
	require.Equal(t, []string{"prod-a", "Upgrading", "v1.37.1", "3", "1", "https://10.0.0.1:6443"}, strings.Fields(lines[1])[:6])

	names := kubectl("get", "kok", "-o", "name")
	for _, want := range []string{
		"clusterpackageversion.kok.dev/v1.37.2", "cluster.kok.dev/prod-a",
		"machinepackageversion.kok.dev/containerd-1.7.2", "machine.kok.dev/node-1",
		"noderollout.kok.dev/containerd-1-7-2", "nodefault.kok.dev/node-1-disk", "ratelimitpolicy.kok.dev/reboots",
	} {
		require.Contains(t, names, want, "kubectl get kok")
	}
	for _, short := range []string{"cpv", "kc", "mpv", "mach", "nro", "nf", "rlp"} {
		require.NotEmpty(t, kubectl("get", short, "-o", "name"), "kubectl get %s", short)
	}
}

// requireStatusPhase reads obj back and checks the status subresource kept the phase.
func requireStatusPhase(t *testing.T, c client.Client, obj client.Object, want string, phase func() string) {
	t.Helper()
	require.NoError(t, c.Get(t.Context(), client.ObjectKeyFromObject(obj), obj))
	require.Equal(t, want, phase())
}

// testAllowedUpdates checks that the immutability rules do not block the edits that drive kok.
func testAllowedUpdates(t *testing.T, c client.Client) {
	ctx := t.Context()
	update := func(t *testing.T, obj client.Object, edit func()) {
		t.Helper()
		require.NoError(t, c.Create(ctx, obj))
		edit()
		require.NoError(t, c.Update(ctx, obj))
	}
	t.Run("Cluster upgrade and master replacement", func(t *testing.T) {
		obj := validCluster("edit-cluster")
		update(t, obj, func() {
			obj.Spec.PackageVersion = "v1.38.0"
			obj.Spec.Masters.Hosts = []string{"m1", "m2", "m9"}
			obj.Spec.Paused = true
		})
	})
	t.Run("Machine packages and isolations", func(t *testing.T) {
		obj := validMachine("edit-machine")
		update(t, obj, func() {
			obj.Spec.Packages[0].Version = "1.7.3"
			obj.Spec.Isolations = []kokv1.Isolation{{Requester: "noderepair/nf-1", Reason: "disk"}}
		})
	})
	t.Run("NodeRollout strategy", func(t *testing.T) {
		obj := validRollout("edit-rollout")
		update(t, obj, func() {
			obj.Spec.Strategy.BatchSize = 50
			obj.Spec.Paused = true
		})
	})
	t.Run("NodeFault severity and repair", func(t *testing.T) {
		obj := validFault("edit-fault")
		update(t, obj, func() {
			obj.Spec.Severity = kokv1.SeverityCritical
			obj.Spec.Repair.Action = kokv1.RepairOSReinstall
		})
	})
	t.Run("MachinePackageVersion labels", func(t *testing.T) {
		obj := validMPV("kubelet", "v1.37.2")
		update(t, obj, func() { obj.Labels = map[string]string{"kok.dev/deprecated": "true"} })
	})
}

func invalidCreates() []createCase {
	var cases []createCase
	add := func(name string, obj client.Object, want ...refusal) {
		cases = append(cases, createCase{name: name, obj: obj, want: want})
	}

	// ClusterPackageVersion.
	cpv := validCPV("no-scheduler")
	cpv.Spec.Components = cpv.Spec.Components[:3]
	add("ClusterPackageVersion without kube-scheduler", cpv,
		refusal{"spec.components", "components must include etcd, kube-apiserver, kube-controller-manager and kube-scheduler"})
	cpv = validCPV("bad-sha")
	cpv.Spec.Components[0].Artifact.SHA256 = "ABC123"
	add("ClusterPackageVersion with a bad sha256", cpv,
		refusal{"spec.components[0].artifact.sha256", "should match '^[a-f0-9]{64}$'"})
	cpv = validCPV("nothing-to-run")
	cpv.Spec.Components[2].Artifact = nil
	add("ClusterPackageVersion component with neither artifact nor image", cpv,
		refusal{"spec.components[2]", "each component needs an artifact (provider process), an image (provider kok), or both"})
	cpv = validCPV("two-handlers")
	cpv.Spec.Components[1].HealthCheck.TCP = &kokv1.TCPProbe{Address: "127.0.0.1:6443"}
	add("ClusterPackageVersion probe with two handlers", cpv,
		refusal{"spec.components[1].healthCheck", "healthCheck must set exactly one of exec, http or tcp"})
	cpv = validCPV("bad-k8s-version")
	cpv.Spec.KubernetesVersion = "1.37"
	add("ClusterPackageVersion with a bad kubernetesVersion", cpv,
		refusal{"spec.kubernetesVersion", `should match '^v[0-9]+\.[0-9]+\.[0-9]+$'`})
	cpv = validCPV("image-by-tag")
	cpv.Spec.Components[0].Image = "registry.k8s.io/etcd:3.7.0"
	add("ClusterPackageVersion image not pinned by digest", cpv,
		refusal{"spec.components[0].image", "should match"})

	// Cluster.
	cl := validCluster("host-count")
	cl.Spec.Masters.Hosts = []string{"m1", "m2"}
	add("Cluster whose host count differs from masters.count", cl,
		refusal{"spec.masters.hosts", "masters.hosts must list exactly masters.count hosts when provider is process"})
	cl = validCluster("no-hosts")
	cl.Spec.Masters.Hosts = nil
	add("Cluster with provider process and no hosts", cl,
		refusal{"spec.masters.hosts", "masters.hosts must list exactly masters.count hosts when provider is process"})
	cl = validCluster("kok-with-hosts")
	cl.Spec.Provider = kokv1.ProviderKok
	add("Cluster with provider kok and hosts", cl,
		refusal{"spec.masters.hosts", "masters.hosts must be empty when provider is kok"})
	cl = validCluster("four-masters")
	cl.Spec.Masters.Count = 4
	cl.Spec.Masters.Hosts = []string{"m1", "m2", "m3", "m4"}
	add("Cluster with 4 masters", cl,
		refusal{"spec.masters.count", `Unsupported value: 4: supported values: "1", "3", "5"`})
	cl = validCluster("same-host-twice")
	cl.Spec.Masters.Hosts = []string{"m1", "m2", "m1"}
	add("Cluster naming one master host twice", cl,
		refusal{"spec.masters.hosts[2]", `Duplicate value: "m1"`})
	cl = validCluster("no-package-version")
	cl.Spec.PackageVersion = ""
	add("Cluster without packageVersion", cl,
		refusal{"spec.packageVersion", "should be at least 1 chars long"})
	cl = validCluster("bad-provider")
	cl.Spec.Provider = "vm"
	add("Cluster with an unknown provider", cl,
		refusal{"spec.provider", `Unsupported value: "vm": supported values: "process", "kok"`})
	cl = validCluster("overlap")
	cl.Spec.Network.PodCIDR = "10.96.0.0/16"
	add("Cluster whose pod and service ranges overlap", cl,
		refusal{"spec.network", "network.serviceCIDR and network.podCIDR must not overlap"})
	cl = validCluster("host-bits")
	cl.Spec.Network.ServiceCIDR = "10.96.0.1/12"
	add("Cluster with a service range that is not a network", cl,
		refusal{"spec.network.serviceCIDR", "network.serviceCIDR must be a network in CIDR form"})
	cl = validCluster("port")
	cl.Spec.Network.APIServerPort = 70000
	add("Cluster with apiServerPort out of range", cl,
		refusal{"spec.network.apiServerPort", "should be less than or equal to 65535"})
	cl = validCluster("check-interval")
	cl.Spec.Health.CheckInterval = &metav1.Duration{Duration: time.Second}
	add("Cluster checking health every second", cl,
		refusal{"spec.health.checkInterval", "health.checkInterval must be between 5s and 1h"})

	// MachinePackageVersion.
	mpv := validMPV("containerd", "1.7.9")
	mpv.Name = "containerd-latest"
	// A rule on the object root has no field path (the server prints <nil>); the message names
	// metadata.name and the name it must have.
	add("MachinePackageVersion whose name is not package-version", mpv,
		refusal{"<nil>", "metadata.name must be containerd-1.7.9 (spec.package-spec.version)"})
	mpv = validMPV("runc", "1.2.0")
	mpv.Spec.Artifact.SHA256 = sha1[:63]
	add("MachinePackageVersion with a short sha256", mpv,
		refusal{"spec.artifact.sha256", "should match '^[a-f0-9]{64}$'"})
	mpv = validMPV("runc", "1.2.1")
	mpv.Spec.Artifact = nil
	add("MachinePackageVersion Component without artifact", mpv,
		refusal{"spec.artifact", "artifact is required unless type is SystemSetting"})
	mpv = validMPV("runc", "1.2.2")
	mpv.Spec.HealthCheck = &kokv1.Probe{
		Exec: &kokv1.ExecProbe{Command: []string{"runc", "--version"}},
		HTTP: &kokv1.HTTPProbe{URL: "http://127.0.0.1:1/healthz"},
	}
	add("MachinePackageVersion probe with two handlers", mpv,
		refusal{"spec.healthCheck", "healthCheck must set exactly one of exec, http or tcp"})
	mpv = validMPV("runc", "1.2.7")
	mpv.Spec.HealthCheck.PeriodSeconds = 10
	mpv.Spec.HealthCheck.TimeoutSeconds = 20
	add("MachinePackageVersion probe timing out after its period", mpv,
		refusal{"spec.healthCheck", "healthCheck.timeoutSeconds must not exceed healthCheck.periodSeconds"})
	mpv = validMPV("runc", "1.2.3")
	mpv.Spec.ConfigFiles[0].Path = "etc/containerd/config.toml"
	add("MachinePackageVersion with a relative config path", mpv,
		refusal{"spec.configFiles[0].path", "configFiles[].path must be absolute"})
	mpv = validMPV("runc", "1.2.4")
	mpv.Spec.ConfigFiles[0].Mode = ptr.To(int32(0o1000))
	add("MachinePackageVersion with a config mode above 0777", mpv,
		refusal{"spec.configFiles[0].mode", "should be less than or equal to 511"})
	mpv = validMPV("runc", "1.2.5")
	mpv.Spec.DependsOn = []string{"runc"}
	add("MachinePackageVersion depending on itself", mpv,
		refusal{"spec.dependsOn", "dependsOn must not name the package itself"})
	mpv = validMPV("runc", "1.2.6")
	mpv.Spec.Installer = "apk"
	add("MachinePackageVersion with an unknown installer", mpv,
		refusal{"spec.installer", `Unsupported value: "apk": supported values: "local", "deb", "rpm"`})

	// Machine.
	m := validMachine("dup-package")
	m.Spec.Packages = append(m.Spec.Packages, kokv1.PackageRef{Name: "containerd", Version: "1.7.3"})
	add("Machine naming one component twice", m,
		refusal{"spec.packages[2]", `Duplicate value: {"name":"containerd"}`})
	m = validMachine("fast-drift")
	m.Spec.DriftCheckInterval = &metav1.Duration{Duration: 5 * time.Second}
	add("Machine with a drift check below 10s", m,
		refusal{"spec.driftCheckInterval", "driftCheckInterval must be between 10s and 24h"})
	m = validMachine("gate-mode")
	m.Spec.ReadinessGates[0].Mode = "Sometimes"
	add("Machine with an unknown readiness gate mode", m,
		refusal{"spec.readinessGates[0].mode", `Unsupported value: "Sometimes": supported values: "Continuous", "Bootstrap"`})
	m = validMachine("dup-isolation")
	m.Spec.Isolations = []kokv1.Isolation{{Requester: "human/alice"}, {Requester: "human/alice", Reason: "again"}}
	add("Machine with two isolations from one requester", m,
		refusal{"spec.isolations[1]", `Duplicate value: {"requester":"human/alice"}`})
	m = validMachine("bad-version")
	m.Spec.Packages[0].Version = "1.7.2+Build"
	add("Machine with a package version outside the allowed characters", m,
		refusal{"spec.packages[0].version", "should match"})

	// NodeRollout.
	r := validRollout("batch-zero")
	r.Spec.Strategy.BatchSize = 0
	add("NodeRollout with batchSize 0", r,
		refusal{"spec.strategy.batchSize", "spec.strategy.batchSize in body should be greater than or equal to 1"})
	r = validRollout("no-packages")
	r.Spec.Packages = []kokv1.PackageRef{}
	add("NodeRollout without packages", r,
		refusal{"spec.packages", "spec.packages in body should have at least 1 items"})
	r = validRollout("two-sources")
	r.Spec.Metrics[0].Prometheus = &kokv1.PrometheusMetric{
		Address: "http://prometheus:9090", Query: "up", Threshold: resource.MustParse("1"), Operator: kokv1.MetricGreaterThanOrEqual,
	}
	add("NodeRollout metric with two sources", r,
		refusal{"spec.metrics[0]", "metrics[] must set exactly one of podCreationSuccessRate or prometheus"})
	r = validRollout("approval")
	r.Spec.Strategy.Approval = "Sometimes"
	add("NodeRollout with an unknown approval", r,
		refusal{"spec.strategy.approval", `Unsupported value: "Sometimes": supported values: "None", "AfterCanary", "EveryBatch"`})
	r = validRollout("percent")
	r.Spec.Metrics[0].PodCreationSuccessRate.MinPercent = 101
	add("NodeRollout with a success rate above 100%", r,
		refusal{"spec.metrics[0].podCreationSuccessRate.minPercent", "should be less than or equal to 100"})

	// NodeFault.
	f := validFault("no-node")
	f.Spec.NodeName = ""
	add("NodeFault without nodeName", f,
		refusal{"spec.nodeName", "should be at least 1 chars long"})
	f = validFault("bad-type")
	f.Spec.Type = "Gremlins"
	add("NodeFault with an unknown type", f,
		refusal{"spec.type", `Unsupported value: "Gremlins"`})
	f = validFault("no-component")
	f.Spec.Type = kokv1.FaultComponentUnhealthy
	add("NodeFault ComponentUnhealthy without component", f,
		refusal{"spec.component", "component is required when type is ComponentUnhealthy"})
	f = validFault("escalate-fast")
	f.Spec.Repair.EscalateAfter = &metav1.Duration{Duration: 10 * time.Second}
	add("NodeFault escalating after 10s", f,
		refusal{"spec.repair.escalateAfter", "repair.escalateAfter must be between 1m and 720h"})

	// RateLimitPolicy.
	p := validPolicy("zero-in-flight")
	p.Spec.MaxInFlight = 0
	add("RateLimitPolicy with maxInFlight 0", p,
		refusal{"spec.maxInFlight", "should be greater than or equal to 1"})
	p = validPolicy("healthy-percent")
	p.Spec.MinHealthyPercent = ptr.To(int32(101))
	add("RateLimitPolicy with minHealthyPercent above 100", p,
		refusal{"spec.minHealthyPercent", "should be less than or equal to 100"})
	p = validPolicy("window-ops")
	p.Spec.Window.MaxOperations = 0
	add("RateLimitPolicy window without operations", p,
		refusal{"spec.window.maxOperations", "should be greater than or equal to 1"})
	p = validPolicy("window-zero")
	p.Spec.Window.Duration = metav1.Duration{}
	add("RateLimitPolicy with a zero window", p,
		refusal{"spec.window.duration", "window.duration must be between 1s and 720h"})
	p = validPolicy("operation")
	p.Spec.Operation = "Format"
	add("RateLimitPolicy with an unknown operation", p,
		refusal{"spec.operation", `Unsupported value: "Format"`})

	return cases
}

func invalidUpdates() []updateCase {
	return []updateCase{
		{
			name: "ClusterPackageVersion spec edit",
			obj:  validCPV("edit-cpv"),
			edit: func(o client.Object) {
				o.(*kokv1.ClusterPackageVersion).Spec.Components[0].Args = map[string]string{"quota-backend-bytes": "8589934592"}
			},
			want: []refusal{{"spec", "spec is immutable: package versions are immutable, create a new ClusterPackageVersion instead"}},
		},
		{
			name: "MachinePackageVersion spec edit",
			obj:  validMPV("kubelet", "v1.37.1"),
			edit: func(o client.Object) {
				o.(*kokv1.MachinePackageVersion).Spec.Artifact.SHA256 = sha2
			},
			want: []refusal{{"spec", "spec is immutable: package versions are immutable, create a new MachinePackageVersion instead"}},
		},
		{
			name: "Cluster provider change",
			obj:  validCluster("change-provider"),
			edit: func(o client.Object) {
				cl := o.(*kokv1.Cluster)
				cl.Spec.Provider = kokv1.ProviderKok
				cl.Spec.Masters.Hosts = nil
			},
			want: []refusal{{"spec.provider", "provider is immutable: create a new Cluster to change it"}},
		},
		{
			name: "Cluster masters.count change",
			obj:  validCluster("change-count"),
			edit: func(o client.Object) {
				cl := o.(*kokv1.Cluster)
				cl.Spec.Masters.Count = 5
				cl.Spec.Masters.Hosts = append(cl.Spec.Masters.Hosts, "m4", "m5")
			},
			want: []refusal{{"spec.masters.count", "masters.count is immutable"}},
		},
		{
			name: "Cluster replacing two masters at once",
			obj:  validCluster("replace-two"),
			edit: func(o client.Object) {
				o.(*kokv1.Cluster).Spec.Masters.Hosts = []string{"m1", "m8", "m9"}
			},
			want: []refusal{{"spec.masters.hosts", "masters.hosts may replace at most one host per change"}},
		},
		{
			name: "Cluster network change",
			obj:  validCluster("change-network"),
			edit: func(o client.Object) {
				o.(*kokv1.Cluster).Spec.Network.PodCIDR = "10.200.0.0/16"
			},
			want: []refusal{{"spec.network", "network is immutable"}},
		},
		{
			name: "Machine host change",
			obj:  validMachine("change-host"),
			edit: func(o client.Object) {
				o.(*kokv1.Machine).Spec.Host = "other-host"
			},
			want: []refusal{{"spec.host", "spec.host is immutable"}},
		},
		{
			name: "NodeRollout packages change",
			obj:  validRollout("change-packages"),
			edit: func(o client.Object) {
				o.(*kokv1.NodeRollout).Spec.Packages[0].Version = "1.7.4"
			},
			want: []refusal{{"spec.packages", "packages is immutable: create a new NodeRollout for a different change"}},
		},
		{
			name: "NodeRollout selector change",
			obj:  validRollout("change-selector"),
			edit: func(o client.Object) {
				o.(*kokv1.NodeRollout).Spec.Selector.MatchLabels["pool"] = "gpu"
			},
			want: []refusal{{"spec.selector", "selector is immutable"}},
		},
		{
			name: "NodeFault nodeName change",
			obj:  validFault("change-node"),
			edit: func(o client.Object) {
				o.(*kokv1.NodeFault).Spec.NodeName = "node-2"
			},
			want: []refusal{{"spec.nodeName", "nodeName is immutable: a fault on another node is a new NodeFault"}},
		},
		{
			name: "NodeFault type change",
			obj:  validFault("change-type"),
			edit: func(o client.Object) {
				o.(*kokv1.NodeFault).Spec.Type = kokv1.FaultKernelDeadlock
			},
			want: []refusal{{"spec.type", "type is immutable: a different fault is a new NodeFault"}},
		},
	}
}

func validCPV(name string) *kokv1.ClusterPackageVersion {
	artifact := func(component string) *kokv1.Artifact {
		return &kokv1.Artifact{URL: fmt.Sprintf("https://artifacts.example.com/%s/%s.tar.gz", name, component), SHA256: sha1}
	}
	return &kokv1.ClusterPackageVersion{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kokv1.ClusterPackageVersionSpec{
			KubernetesVersion: "v1.37.2",
			Components: []kokv1.ControlPlaneComponent{
				{
					Name: kokv1.ComponentEtcd, Version: "v3.7.0", Artifact: artifact("etcd"),
					Args:        map[string]string{"quota-backend-bytes": "4294967296"},
					HealthCheck: &kokv1.Probe{TCP: &kokv1.TCPProbe{Address: "127.0.0.1:2379"}},
				},
				{
					Name: kokv1.ComponentKubeAPIServer, Version: "v1.37.2", Artifact: artifact("kube-apiserver"),
					Image: "registry.example.com/kube-apiserver@sha256:" + sha2,
					HealthCheck: &kokv1.Probe{HTTP: &kokv1.HTTPProbe{
						URL: "https://127.0.0.1:6443/livez", InsecureSkipVerify: true,
					}},
				},
				{Name: kokv1.ComponentKubeControllerManager, Version: "v1.37.2", Artifact: artifact("kube-controller-manager")},
				{Name: kokv1.ComponentKubeScheduler, Version: "v1.37.2", Artifact: artifact("kube-scheduler")},
			},
		},
	}
}

func validCluster(name string) *kokv1.Cluster {
	return &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kokv1.ClusterSpec{
			PackageVersion: "v1.37.2",
			Masters:        kokv1.ClusterMasters{Count: 3, Hosts: []string{"m1", "m2", "m3"}},
			Components: []kokv1.ClusterComponent{
				{Name: kokv1.ComponentKubeAPIServer, Args: map[string]string{"max-requests-inflight": "800"}},
			},
		},
	}
}

func validMPV(pkg, version string) *kokv1.MachinePackageVersion {
	return &kokv1.MachinePackageVersion{
		ObjectMeta: metav1.ObjectMeta{Name: pkg + "-" + version},
		Spec: kokv1.MachinePackageVersionSpec{
			Package:  pkg,
			Version:  version,
			Artifact: &kokv1.Artifact{URL: "file:///var/lib/kok/artifacts/" + pkg + "-" + version + ".tar.gz", SHA256: sha1},
			ConfigFiles: []kokv1.ConfigFile{
				{Path: "/etc/" + pkg + "/config.toml", Content: "version = 3\n"},
			},
			Service: &kokv1.Service{
				Command: []string{"bin/" + pkg},
				Args:    []string{"--config", "/etc/" + pkg + "/config.toml"},
				Env:     []kokv1.EnvVar{{Name: "GOMAXPROCS", Value: "2"}},
			},
			HealthCheck: &kokv1.Probe{Exec: &kokv1.ExecProbe{Command: []string{"bin/" + pkg, "--version"}}},
			Sysctls:     map[string]string{"fs.inotify.max_user_watches": "1048576"},
		},
	}
}

func validMachine(name string) *kokv1.Machine {
	return &kokv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": "general"}},
		Spec: kokv1.MachineSpec{
			Packages: []kokv1.PackageRef{
				{Name: "containerd", Version: "1.7.2"},
				{Name: "kubelet", Version: "v1.37.2"},
			},
			ReadinessGates: []kokv1.ReadinessGate{{ConditionType: "example.com/NetworkReady"}},
		},
	}
}

func validRollout(name string) *kokv1.NodeRollout {
	return &kokv1.NodeRollout{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kokv1.NodeRolloutSpec{
			Packages: []kokv1.PackageRef{{Name: "containerd", Version: "1.7.3"}},
			Selector: metav1.LabelSelector{MatchLabels: map[string]string{"pool": "general"}},
			Strategy: kokv1.RolloutStrategy{BatchSize: 10, MaxFailures: 2},
			Metrics: []kokv1.RolloutMetric{
				{Name: "pod-starts", PodCreationSuccessRate: &kokv1.PodCreationSuccessRateMetric{MinPercent: 99}},
				{Name: "api-errors", Prometheus: &kokv1.PrometheusMetric{
					Address: "http://prometheus.monitoring:9090", Query: `sum(rate(apiserver_request_total{code=~"5.."}[5m]))`,
					Threshold: resource.MustParse("0.01"), Operator: kokv1.MetricLessThan,
				}},
			},
		},
	}
}

func validFault(name string) *kokv1.NodeFault {
	return &kokv1.NodeFault{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kokv1.NodeFaultSpec{
			NodeName: "node-1", Type: kokv1.FaultDiskFailure, Source: kokv1.FaultSourceAgent,
			Message: "/dev/sdb: I/O error",
		},
	}
}

func validPolicy(name string) *kokv1.RateLimitPolicy {
	return &kokv1.RateLimitPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kokv1.RateLimitPolicySpec{
			Operation:         kokv1.OperationReboot,
			MaxInFlight:       5,
			Window:            &kokv1.RateWindow{Duration: metav1.Duration{Duration: time.Hour}, MaxOperations: 50},
			MinHealthyPercent: ptr.To(int32(90)),
		},
	}
}
