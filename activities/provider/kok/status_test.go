package kok

import (
	"testing"

	"github.com/stretchr/testify/require"

	kokv1 "kok.dev/api/v1alpha1"
)

func pods(version string, n int) []podVersion {
	out := make([]podVersion, n)
	for i := range out {
		out[i] = podVersion{PackageVersion: version, Version: "v1.37.2"}
	}
	return out
}

// done is a Deployment whose rollout to version finished with n replicas.
func done(version string, n int32) *workload {
	return &workload{Kind: "Deployment", Name: "c1-kube-apiserver", Generation: 2, ObservedGeneration: 2,
		Desired: n, Total: n, Ready: n, Updated: n, Available: n, Target: version}
}

func TestComponentStatus(t *testing.T) {
	for _, tc := range []struct {
		name    string
		w       func() *workload
		pods    []podVersion
		want    string
		ready   bool
		version string
		message string
	}{
		{name: "missing", w: func() *workload { return nil }, message: "not found"},
		{name: "rolled out", w: func() *workload { return done("B", 3) }, pods: pods("B", 3),
			ready: true, version: "B", message: "3/3 replicas ready at B"},
		{name: "rolled out at the version asked for", w: func() *workload { return done("B", 3) }, pods: pods("B", 3), want: "B",
			ready: true, version: "B", message: "3/3 replicas ready at B"},
		{name: "another version asked for", w: func() *workload { return done("A", 3) }, pods: pods("A", 3), want: "B",
			version: "A", message: "rendered from A, not B: EnsureControlPlane has not run for it"},
		{name: "new generation not observed", w: func() *workload { w := done("B", 3); w.Generation = 3; return w }, pods: pods("A", 3),
			version: "A", message: "waiting for the Deployment controller to observe generation 3"},
		{name: "halfway", w: func() *workload { w := done("B", 3); w.Updated, w.Total = 1, 4; return w },
			pods:    append(pods("A", 3), pods("B", 1)...),
			message: "1 of 3 replicas updated to B"},
		{name: "old pods left", w: func() *workload { w := done("B", 3); w.Total = 4; return w },
			pods:    append(pods("A", 1), pods("B", 3)...),
			message: "1 old replicas pending termination"},
		{name: "not ready", w: func() *workload { w := done("B", 3); w.Ready, w.Available = 2, 2; return w }, pods: pods("B", 3),
			version: "B", message: "2 of 3 replicas ready"},
		{name: "StatefulSet revision pending", w: func() *workload {
			w := done("B", 3)
			w.Kind, w.CurrentRevision, w.UpdateRevision = "StatefulSet", "c1-etcd-1", "c1-etcd-2"
			return w
		}, pods: pods("B", 3), version: "B", message: "waiting for the StatefulSet rollout to revision c1-etcd-2"},
		{name: "StatefulSet done", w: func() *workload {
			w := done("B", 3)
			w.Kind, w.CurrentRevision, w.UpdateRevision = "StatefulSet", "c1-etcd-2", "c1-etcd-2"
			return w
		}, pods: pods("B", 3), ready: true, version: "B", message: "3/3 replicas ready at B"},
		{name: "controller done, pods lag", w: func() *workload { return done("B", 3) }, pods: append(pods("B", 2), pods("A", 1)...),
			message: "pods run 1 at A, 2 at B, want 3 at B"},
		{name: "scaled to zero", w: func() *workload { return done("B", 0) }, message: "scaled to 0 replicas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := componentStatus(kokv1.ComponentKubeAPIServer, tc.w(), tc.pods, tc.want)
			require.Equal(t, tc.ready, s.Ready)
			require.Equal(t, tc.version, s.PackageVersion)
			require.Equal(t, tc.message, s.Message)
		})
	}

	s := componentStatus(kokv1.ComponentKubeAPIServer, done("B", 3), append(pods("B", 2), pods("A", 1)...), "")
	require.Equal(t, []VersionCount{{PackageVersion: "A", Pods: 1}, {PackageVersion: "B", Pods: 2}}, s.Pods)
	require.Equal(t, "Deployment/c1-kube-apiserver", s.Object)
	require.Empty(t, s.Version, "pods differ")
	s = componentStatus(kokv1.ComponentKubeAPIServer, done("B", 3), pods("B", 3), "")
	require.Equal(t, "v1.37.2", s.Version)
}

func TestSummarize(t *testing.T) {
	ready := func(c kokv1.ControlPlaneComponentName, v string) ComponentStatus {
		return ComponentStatus{Name: c, Ready: true, PackageVersion: v, TargetPackageVersion: v, Message: "ok"}
	}
	all := func(v string) []ComponentStatus {
		var out []ComponentStatus
		for _, c := range coreComponents {
			out = append(out, ready(c, v))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		comps   []ComponentStatus
		want    string
		ready   bool
		version string
		message string
	}{
		{name: "all ready", comps: all("B"), ready: true, version: "B"},
		{name: "all ready at the version asked for", comps: all("B"), want: "B", ready: true, version: "B"},
		{name: "all ready at another version", comps: all("A"), want: "B", version: "A", message: "runs A, not B"},
		{name: "with operator", comps: append(all("B"), ready(kokv1.ComponentMachineOperator, "B")), ready: true, version: "B"},
		{name: "operator not ready", comps: append(all("B"), ComponentStatus{Name: kokv1.ComponentMachineOperator, Message: "0 of 1 replicas ready", PackageVersion: "B"}),
			version: "B", message: "machine-operator: 0 of 1 replicas ready"},
		{name: "a core component missing", comps: all("B")[:3], version: "B", message: "kube-scheduler: not found"},
		{name: "mixed versions", comps: append(all("B")[:3], ready(kokv1.ComponentKubeScheduler, "A")),
			message: "components run different versions: etcd B, kube-apiserver B, kube-controller-manager B, kube-scheduler A"},
		{name: "several problems", comps: func() []ComponentStatus {
			c := all("B")
			c[0] = ComponentStatus{Name: kokv1.ComponentEtcd, Message: "1 of 3 replicas updated to B"}
			c[2] = ComponentStatus{Name: kokv1.ComponentKubeControllerManager, Message: "not found"}
			return c
		}(), message: "etcd: 1 of 3 replicas updated to B; kube-controller-manager: not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := summarize(tc.comps, tc.want)
			require.Equal(t, tc.ready, st.Ready)
			require.Equal(t, tc.version, st.PackageVersion)
			require.Equal(t, tc.message, st.Message)
		})
	}
}
