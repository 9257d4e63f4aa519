package machine

import (
	"strings"
	"testing"
	"time"

	"kok.dev/contract/search"
	machinewf "kok.dev/workflows/machine"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kokv1 "kok.dev/api/v1alpha1"
)

func baseInputs() Inputs {
	return Inputs{
		Machine: &kokv1.Machine{
			ObjectMeta: metav1.ObjectMeta{
				Name: "m1", UID: "uid-1", Generation: 3, ResourceVersion: "100",
				Labels:      map[string]string{"pool": "a"},
				Annotations: map[string]string{kokv1.AnnotationRetry: "t1", "note": "x"},
			},
			Spec: kokv1.MachineSpec{Packages: []kokv1.PackageRef{{Name: "kubelet", Version: "1.0"}, {Name: "runtime", Version: "2.0"}}},
		},
		PackageVersions: map[string]*kokv1.MachinePackageVersion{
			"kubelet-1.0": {ObjectMeta: metav1.ObjectMeta{Name: "kubelet-1.0", UID: "p1", Generation: 1}},
			"runtime-2.0": {ObjectMeta: metav1.ObjectMeta{Name: "runtime-2.0", UID: "p2", Generation: 1}},
		},
		ConditionMaps: []corev1.ConfigMap{
			{ObjectMeta: metav1.ObjectMeta{Name: "net-m1", ResourceVersion: "5", Labels: map[string]string{kokv1.LabelNode: "m1"}}, Data: map[string]string{"NetworkReady": "True"}},
			{ObjectMeta: metav1.ObjectMeta{Name: "disk-m1", Labels: map[string]string{kokv1.LabelNode: "m1"}}, Data: map[string]string{"DiskReady": "True"}},
		},
		NodeExists: true,
	}
}

func TestDigest(t *testing.T) {
	now := metav1.NewTime(time.Unix(1, 0))
	base := Digest(baseInputs())
	if !strings.HasPrefix(base, digestVersion) || len(base) > 128 {
		t.Fatalf("Digest = %q: want the %q prefix and at most 128 characters (the CRD's limit)", base, digestVersion)
	}
	for _, tc := range []struct {
		name    string
		edit    func(*Inputs)
		changed bool
	}{
		{"same inputs", func(*Inputs) {}, false},
		{"machine status", func(in *Inputs) {
			in.Machine.Status.ObservedInputs = "x"
			in.Machine.Status.ObservedGeneration = 3
		}, false},
		{"machine resourceVersion", func(in *Inputs) { in.Machine.ResourceVersion = "101" }, false},
		{"machine label", func(in *Inputs) { in.Machine.Labels["pool"] = "b" }, false},
		{"unrelated annotation", func(in *Inputs) { in.Machine.Annotations["note"] = "y" }, false},
		{"condition map label", func(in *Inputs) { in.ConditionMaps[0].Labels["extra"] = "1" }, false},
		{"condition map resourceVersion", func(in *Inputs) { in.ConditionMaps[0].ResourceVersion = "6" }, false},
		{"condition map order", func(in *Inputs) {
			in.ConditionMaps[0], in.ConditionMaps[1] = in.ConditionMaps[1], in.ConditionMaps[0]
		}, false},
		{"package version status other than phase", func(in *Inputs) {
			in.PackageVersions["kubelet-1.0"].ResourceVersion = "9"
		}, false},
		{"generation", func(in *Inputs) { in.Machine.Generation = 4 }, true},
		{"recreated under the same name", func(in *Inputs) { in.Machine.UID = "uid-2" }, true},
		{"retry annotation", func(in *Inputs) { in.Machine.Annotations[kokv1.AnnotationRetry] = "t2" }, true},
		{"deletion", func(in *Inputs) { in.Machine.DeletionTimestamp = &now }, true},
		{"condition map data", func(in *Inputs) { in.ConditionMaps[0].Data["NetworkReady"] = "False" }, true},
		{"condition map added", func(in *Inputs) {
			in.ConditionMaps = append(in.ConditionMaps, corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "gpu-m1"}, Data: map[string]string{"GPUReady": "True"}})
		}, true},
		{"condition map removed", func(in *Inputs) { in.ConditionMaps = in.ConditionMaps[:1] }, true},
		{"node registered or gone", func(in *Inputs) { in.NodeExists = false }, true},
		{"package version missing", func(in *Inputs) { delete(in.PackageVersions, "runtime-2.0") }, true},
		{"package version invalid", func(in *Inputs) {
			in.PackageVersions["runtime-2.0"].Status.Phase = kokv1.PackageVersionInvalid
		}, true},
		{"package version recreated", func(in *Inputs) { in.PackageVersions["runtime-2.0"].UID = "p3" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := baseInputs()
			tc.edit(&in)
			if got := Digest(in) != base; got != tc.changed {
				t.Errorf("digest changed = %v, want %v", got, tc.changed)
			}
		})
	}
}

func TestMustSignal(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		digest, observed, lastSent string
		want                       bool
	}{
		{"restart, nothing changed", "a", "a", "", false},
		{"restart, changed while down", "b", "a", "", true},
		{"first start", "a", "", "", true},
		{"sent, not yet acted on", "b", "a", "b", false},
		{"sent, acted on, changed again", "c", "b", "b", true},
		{"acted on what was sent", "b", "b", "b", false},
		{"changed and changed back before the workflow reported", "a", "a", "b", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MustSignal(tc.digest, tc.observed, tc.lastSent); got != tc.want {
				t.Errorf("MustSignal(%q, %q, %q) = %v, want %v", tc.digest, tc.observed, tc.lastSent, got, tc.want)
			}
		})
	}
}

func TestConditionMapUpdateMatters(t *testing.T) {
	base := func() *corev1.ConfigMap {
		return &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "net-m1", Namespace: kokv1.ConditionNamespace, ResourceVersion: "1",
				Labels: map[string]string{kokv1.LabelNode: "m1", kokv1.LabelReporter: "net"}, Annotations: map[string]string{"a": "1"}},
			Data: map[string]string{"NetworkReady": "True", "NetworkReady.message": "ok"},
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*corev1.ConfigMap)
		want bool
	}{
		{"resync, nothing changed", func(*corev1.ConfigMap) {}, false},
		{"resourceVersion only (a no-op apply)", func(c *corev1.ConfigMap) { c.ResourceVersion = "2" }, false},
		{"reporter label", func(c *corev1.ConfigMap) { c.Labels[kokv1.LabelReporter] = "net2" }, false},
		{"other label", func(c *corev1.ConfigMap) { c.Labels["x"] = "y" }, false},
		{"annotation", func(c *corev1.ConfigMap) { c.Annotations["a"] = "2" }, false},
		{"data value", func(c *corev1.ConfigMap) { c.Data["NetworkReady"] = "False" }, true},
		{"data key added", func(c *corev1.ConfigMap) { c.Data["DiskReady"] = "True" }, true},
		{"data key removed", func(c *corev1.ConfigMap) { delete(c.Data, "NetworkReady.message") }, true},
		{"data key renamed", func(c *corev1.ConfigMap) {
			delete(c.Data, "NetworkReady.message")
			c.Data["NetworkReady.reason"] = "ok"
		}, true},
		{"moved to another node", func(c *corev1.ConfigMap) { c.Labels[kokv1.LabelNode] = "m2" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, new := base(), base()
			tc.edit(new)
			if got := ConditionMapUpdateMatters(old, new); got != tc.want {
				t.Errorf("ConditionMapUpdateMatters = %v, want %v", got, tc.want)
			}
		})
	}
}

// The Cluster workflows find Machine workflows by search.KindMachine; the watcher starts them
// with their type name as KokKind.
func TestKindMachineIsTheWorkflowType(t *testing.T) {
	if search.KindMachine != machinewf.WorkflowName {
		t.Fatalf("search.KindMachine = %q, the Machine workflow type is %q", search.KindMachine, machinewf.WorkflowName)
	}
}
