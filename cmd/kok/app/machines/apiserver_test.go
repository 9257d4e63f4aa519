package machines_test

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/describe"
	"kok.dev/cmd/kok/app/get"
	"kok.dev/cmd/kok/app/kubeflags"
	"kok.dev/cmd/kok/app/machines"
	"kok.dev/tests/harness"
)

// TestCommandsAgainstTheAPIServer runs `kok get machines` and `kok describe machine` against a
// real kube-apiserver holding Machines whose status was written as the Machine workflow writes it.
func TestCommandsAgainstTheAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a kube-apiserver")
	}
	env := harness.Start(t, harness.Options{})
	ctx := context.Background()
	c := env.Client

	w1 := &kokv1.Machine{
		ObjectMeta: metav1.ObjectMeta{Name: "w1", Labels: map[string]string{"pool": "gpu"}},
		Spec: kokv1.MachineSpec{
			Packages:       []kokv1.PackageRef{{Name: "containerd", Version: "1.7.2"}, {Name: "kubelet", Version: "v1.37.2"}},
			ReadinessGates: []kokv1.ReadinessGate{{ConditionType: "example.com/NetworkReady"}},
		},
	}
	require.NoError(t, c.Create(ctx, w1))
	transition := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	w1.Status = kokv1.MachineStatus{
		Phase: kokv1.MachineReady, Versions: "containerd=1.7.2,kubelet=v1.37.1", ObservedGeneration: w1.Generation,
		Components: []kokv1.MachineComponentStatus{
			{Name: "containerd", Version: "1.7.2", Phase: kokv1.ComponentRunning, LastTransitionTime: &transition},
			{Name: "kubelet", Version: "v1.37.1", Phase: kokv1.ComponentRunning, LastTransitionTime: &transition},
		},
		Host: &kokv1.HostFacts{OS: "Debian GNU/Linux 13", Kernel: "6.12.0-1-amd64", Arch: "amd64"},
		Conditions: []metav1.Condition{
			{Type: kokv1.MachineConditionSchedulable, Status: metav1.ConditionFalse, Reason: kokv1.ReasonReadinessGateNotTrue,
				Message: "readiness gate example.com/NetworkReady is False", LastTransitionTime: transition},
			{Type: "example.com/NetworkReady", Status: metav1.ConditionFalse, Reason: "NotConfigured",
				Message: "no CNI config", LastTransitionTime: transition},
		},
		Workflow: &kokv1.WorkflowRef{ID: "machine/local/w1", RunID: "run-1",
			URL: "http://127.0.0.1:8233/namespaces/kok/workflows/machine%2Flocal%2Fw1"},
	}
	require.NoError(t, c.Status().Update(ctx, w1))
	require.NoError(t, c.Create(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "w2"}}))

	// One Event about w1 as the Machine workflow records it, and two that are not about it: one
	// about the Node of the same name, one about an earlier Machine w1.
	machineRef := corev1.ObjectReference{APIVersion: "kok.dev/v1alpha1", Kind: "Machine", Name: "w1", UID: w1.UID}
	stale := machineRef
	stale.UID = "an-earlier-w1"
	for name, ref := range map[string]corev1.ObjectReference{
		"w1.repair": machineRef,
		"w1.node":   {APIVersion: "v1", Kind: "Node", Name: "w1"},
		"w1.stale":  stale,
	} {
		now := metav1.Now()
		require.NoError(t, c.Create(ctx, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: name},
			InvolvedObject: ref, Type: corev1.EventTypeWarning, Reason: kokv1.ReasonDriftCorrected,
			Message: "event " + name, Source: corev1.EventSource{Component: "kok-machine-workflow"},
			FirstTimestamp: now, LastTimestamp: now, Count: 1,
		}))
	}

	run := func(verb *cobra.Command, args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		verb.SetArgs(append(args, "--kubeconfig", env.Kubeconfig))
		verb.SetOut(&out)
		verb.SetErr(&errOut)
		verb.SilenceUsage = true
		err := verb.Execute()
		return out.String(), errOut.String(), err
	}
	getCmd := func() *cobra.Command { return get.NewCommand(machines.NewGetCommand) }
	describeCmd := func() *cobra.Command { return describe.NewCommand(machines.NewDescribeCommand) }

	out, _, err := run(getCmd(), "machines")
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`^NAME +PHASE +VERSIONS +SCHEDULABLE +AGE\n`+
		`w1 +Ready +containerd=1\.7\.2,kubelet=v1\.37\.1 +false +\d+s\n`+
		`w2 +<none> +<none> +false +\d+s\n$`), out)

	out, _, err = run(getCmd(), "mach", "w2", "-o", "wide")
	require.NoError(t, err)
	require.Regexp(t, `\nw2 +<none> +<none> +false +\d+s +w2 +<none> +<none>\n$`, out)

	out, errOut, err := run(getCmd(), "machines", "-l", "pool=gpu", "-o", "name")
	require.NoError(t, err)
	require.Equal(t, "machine.kok.dev/w1\n", out)
	require.Empty(t, errOut)

	out, errOut, err = run(getCmd(), "machines", "-l", "pool=cpu")
	require.NoError(t, err)
	require.Empty(t, out)
	require.Equal(t, "No resources found.\n", errOut)

	out, _, err = run(getCmd(), "machines", "w1", "-o", "yaml")
	require.NoError(t, err)
	var back kokv1.Machine
	require.NoError(t, yaml.UnmarshalStrict([]byte(out), &back))
	require.Equal(t, "Machine", back.Kind)
	require.Equal(t, w1.Status, back.Status)

	out, _, err = run(getCmd(), "machines", "w9", "w1")
	require.EqualError(t, err, `machine "w9" not found on `+strings.TrimSuffix(env.Config.Host, "/")+` (context "envtest"); kok get machines lists them`)
	require.Regexp(t, `\nw1 +Ready `, out, "the machines that exist are still listed")

	out, _, err = run(describeCmd(), "machine", "w1")
	require.NoError(t, err)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`\nHost: +w1 \(Debian GNU/Linux 13, kernel 6\.12\.0-1-amd64, amd64\)\n`),
		regexp.MustCompile(`\nSchedulable: +false: readiness gate example\.com/NetworkReady is False\n`),
		regexp.MustCompile(`\n  kubelet +v1\.37\.2 +v1\.37\.1 +Running +\d+s\n`),
		regexp.MustCompile(`\n  example\.com/NetworkReady +Continuous +False +no CNI config\n`),
		regexp.MustCompile(`\nEvents:\n  TYPE +REASON +AGE +FROM +MESSAGE\n  Warning +DriftCorrected +\d+s +kok-machine-workflow +event w1\.repair\nWorkflow:\n`),
		regexp.MustCompile(`\n  History: +temporal workflow show --workflow-id machine/local/w1 --namespace kok\n$`),
	} {
		require.Regexp(t, want, out)
	}

	_, _, err = run(describeCmd(), "machine", "w9")
	require.ErrorContains(t, err, `machine "w9" not found on `)

	// kok machine retry sets the retry annotation to the time, and says so.
	retryCmd := func() *cobra.Command {
		kube := &kubeflags.Flags{}
		cmd := machines.NewRetryCommand(kube, func() time.Time { return time.Date(2026, 12, 2, 23, 0, 0, 0, time.UTC) })
		kube.AddFlags(cmd.Flags())
		return cmd
	}
	out, _, err = run(retryCmd(), "w1")
	require.NoError(t, err)
	require.Equal(t, "machine/w1 annotated kok.dev/retry=2026-12-02T23:00:00Z: its workflow retries the packages it remembers as failed (kok describe machine w1)\n", out)
	var annotated kokv1.Machine
	require.NoError(t, c.Get(ctx, client.ObjectKey{Name: "w1"}, &annotated))
	require.Equal(t, "2026-12-02T23:00:00Z", annotated.Annotations[kokv1.AnnotationRetry])
	require.Equal(t, "gpu", annotated.Labels["pool"], "the merge patch keeps everything else")
	_, _, err = run(retryCmd(), "w9")
	require.ErrorContains(t, err, `machine "w9" not found on `)

	// A cluster without kok's CRDs gets told to install them.
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	crd.SetName("machines.kok.dev")
	require.NoError(t, c.Delete(ctx, crd))
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		_, _, err := run(getCmd(), "machines")
		assert.ErrorContains(ct, err, "does not serve kok's kinds; install kok's CRDs there (kubectl apply -f crds/ in a kok checkout)")
	}, 30*time.Second, 100*time.Millisecond)
}
