package kok

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
)

// StatusParams names the cluster whose control plane is looked at.
type StatusParams struct {
	Cluster string
	// Namespace holds the control plane; empty means pki.Namespace(Cluster).
	Namespace string
	// PackageVersion is the version the caller waits for; empty accepts any one version that
	// every component has rolled out.
	PackageVersion string
}

// Status is the control plane's rollout as the meta cluster's controllers report it.
type Status struct {
	Cluster   string
	Namespace string
	// Ready is true when etcd, kube-apiserver, kube-controller-manager and kube-scheduler (and
	// the machine operator, when there is one) have each rolled out one version — the one asked
	// for, if any — with every replica ready.
	Ready bool
	// PackageVersion is the ClusterPackageVersion every pod of every component runs; empty
	// while they differ.
	PackageVersion string
	// Message says what is not ready yet; empty when Ready.
	Message string
	// Components are in start order: etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler, then machine-operator when it exists.
	Components []ComponentStatus
}

// ComponentStatus is one component's workload.
type ComponentStatus struct {
	Name kokv1.ControlPlaneComponentName
	// Object is the workload, "StatefulSet/<name>" or "Deployment/<name>"; empty when missing.
	Object string
	// DesiredReplicas is spec.replicas; ReadyReplicas and UpdatedReplicas count pods that are
	// ready, and pods of the current template.
	DesiredReplicas int32
	ReadyReplicas   int32
	UpdatedReplicas int32
	// TargetPackageVersion is the ClusterPackageVersion the workload's template was rendered
	// from: where the rollout goes.
	TargetPackageVersion string
	// PackageVersion and Version are the ClusterPackageVersion and the component's own version
	// (v3.7.0 for etcd, say) that every pod runs; empty while the pods differ or there are none.
	PackageVersion string
	Version        string
	// Pods counts the pods (not being deleted) by the ClusterPackageVersion they run, sorted.
	Pods []VersionCount
	// Ready is true when the rollout to TargetPackageVersion (the one asked for, if any) is
	// complete and every desired replica is ready.
	Ready bool
	// Message says what the rollout waits for, or that it is done.
	Message string
}

// VersionCount is how many pods run one ClusterPackageVersion.
type VersionCount struct {
	PackageVersion string
	Pods           int32
}

// ControlPlaneStatus reports each component's rollout and whether the whole control plane runs
// one version, every replica ready. It only reads; poll it after EnsureControlPlane.
func (a *Activities) ControlPlaneStatus(ctx context.Context, p StatusParams) (Status, error) {
	ns, err := target(p.Cluster, p.Namespace)
	if err != nil {
		return Status{}, nonRetryable(ErrTypeInvalidParams, err)
	}
	pods, err := a.listOwned(ctx, ns, p.Cluster, podKind)
	if err != nil {
		return Status{}, err
	}
	byComponent := map[kokv1.ControlPlaneComponentName][]podVersion{}
	for _, pod := range pods {
		if pod.DeletionTimestamp != nil {
			continue
		}
		c := kokv1.ControlPlaneComponentName(pod.Labels[LabelComponent])
		byComponent[c] = append(byComponent[c], podVersion{
			PackageVersion: pod.Annotations[AnnotationPackageVersion],
			Version:        pod.Annotations[AnnotationComponentVersion],
		})
	}

	var comps []ComponentStatus
	for _, c := range slices.Concat(coreComponents, []kokv1.ControlPlaneComponentName{kokv1.ComponentMachineOperator}) {
		w, err := a.workload(ctx, ns, p.Cluster, c)
		if err != nil {
			return Status{}, err
		}
		if w == nil && c == kokv1.ComponentMachineOperator {
			continue // optional: present only when the release has one
		}
		comps = append(comps, componentStatus(c, w, byComponent[c], p.PackageVersion))
	}
	st := summarize(comps, p.PackageVersion)
	st.Cluster, st.Namespace = p.Cluster, ns
	return st, nil
}

// workload is what status needs of a Deployment or StatefulSet.
type workload struct {
	Kind, Name                     string
	Generation, ObservedGeneration int64
	Desired                        int32
	// Total counts every pod the controller owns, old and new; Available is for Deployments
	// (minReadySeconds passed), equal to Ready for StatefulSets here.
	Total, Ready, Updated, Available int32
	// CurrentRevision and UpdateRevision are the StatefulSet's; empty for a Deployment.
	CurrentRevision, UpdateRevision string
	Target                          string
}

type podVersion struct{ PackageVersion, Version string }

// workload reads component c's workload; nil when it does not exist.
func (a *Activities) workload(ctx context.Context, ns, cluster string, c kokv1.ControlPlaneComponentName) (*workload, error) {
	key := client.ObjectKey{Namespace: ns, Name: ObjectName(cluster, c)}
	if c == kokv1.ComponentEtcd {
		var s appsv1.StatefulSet
		if err := a.Client.Get(ctx, key, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			return nil, fmt.Errorf("get StatefulSet %s: %w", key, err)
		}
		return &workload{
			Kind: "StatefulSet", Name: s.Name,
			Generation: s.Generation, ObservedGeneration: s.Status.ObservedGeneration,
			Desired: replicas(s.Spec.Replicas),
			Total:   s.Status.Replicas, Ready: s.Status.ReadyReplicas, Updated: s.Status.UpdatedReplicas, Available: s.Status.AvailableReplicas,
			CurrentRevision: s.Status.CurrentRevision, UpdateRevision: s.Status.UpdateRevision,
			Target: s.Spec.Template.Annotations[AnnotationPackageVersion],
		}, nil
	}
	var d appsv1.Deployment
	if err := a.Client.Get(ctx, key, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("get Deployment %s: %w", key, err)
	}
	return &workload{
		Kind: "Deployment", Name: d.Name,
		Generation: d.Generation, ObservedGeneration: d.Status.ObservedGeneration,
		Desired: replicas(d.Spec.Replicas),
		Total:   d.Status.Replicas, Ready: d.Status.ReadyReplicas, Updated: d.Status.UpdatedReplicas, Available: d.Status.AvailableReplicas,
		Target: d.Spec.Template.Annotations[AnnotationPackageVersion],
	}, nil
}

func replicas(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// componentStatus judges one component as `kubectl rollout status` does, and also asks that
// every pod runs the target version and, when want is set, that the target is want.
func componentStatus(c kokv1.ControlPlaneComponentName, w *workload, pods []podVersion, want string) ComponentStatus {
	s := ComponentStatus{Name: c}
	if w == nil {
		s.Message = "not found"
		return s
	}
	s.Object = ref(w.Kind, w.Name)
	s.DesiredReplicas, s.ReadyReplicas, s.UpdatedReplicas = w.Desired, w.Ready, w.Updated
	s.TargetPackageVersion = w.Target

	counts := map[string]int32{}
	versions := map[string]bool{}
	for _, p := range pods {
		counts[p.PackageVersion]++
		versions[p.Version] = true
	}
	for _, v := range slices.Sorted(maps.Keys(counts)) {
		s.Pods = append(s.Pods, VersionCount{PackageVersion: v, Pods: counts[v]})
	}
	if len(counts) == 1 && len(versions) == 1 {
		s.PackageVersion = pods[0].PackageVersion
		s.Version = pods[0].Version
	}

	switch {
	case want != "" && w.Target != want:
		s.Message = fmt.Sprintf("rendered from %s, not %s: EnsureControlPlane has not run for it", w.Target, want)
	case w.ObservedGeneration < w.Generation:
		s.Message = fmt.Sprintf("waiting for the %s controller to observe generation %d", w.Kind, w.Generation)
	case w.Desired == 0:
		s.Message = "scaled to 0 replicas"
	case w.Updated < w.Desired:
		s.Message = fmt.Sprintf("%d of %d replicas updated to %s", w.Updated, w.Desired, w.Target)
	case w.Total > w.Updated:
		s.Message = fmt.Sprintf("%d old replicas pending termination", w.Total-w.Updated)
	case w.UpdateRevision != "" && w.CurrentRevision != w.UpdateRevision:
		s.Message = fmt.Sprintf("waiting for the StatefulSet rollout to revision %s", w.UpdateRevision)
	case w.Ready < w.Desired:
		s.Message = fmt.Sprintf("%d of %d replicas ready", w.Ready, w.Desired)
	case w.Kind == "Deployment" && w.Available < w.Desired:
		s.Message = fmt.Sprintf("%d of %d replicas available", w.Available, w.Desired)
	case s.PackageVersion != w.Target || counts[w.Target] != w.Desired:
		// The controller says done, but the pods tell otherwise (a listing that lags, an
		// extra pod): wait for them to agree.
		s.Message = fmt.Sprintf("pods run %s, want %d at %s", formatCounts(s.Pods), w.Desired, w.Target)
	default:
		s.Ready = true
		s.Message = fmt.Sprintf("%d/%d replicas ready at %s", w.Ready, w.Desired, w.Target)
	}
	return s
}

// summarize judges the whole control plane from its components.
func summarize(comps []ComponentStatus, want string) Status {
	st := Status{Components: comps}
	present := map[kokv1.ControlPlaneComponentName]bool{}
	var problems []string
	versions := map[string]bool{}
	for _, c := range comps {
		present[c.Name] = true
		versions[c.PackageVersion] = true
		if !c.Ready {
			problems = append(problems, string(c.Name)+": "+c.Message)
		}
	}
	for _, c := range coreComponents {
		if !present[c] {
			problems = append(problems, string(c)+": not found")
		}
	}
	if len(versions) == 1 && len(comps) > 0 {
		st.PackageVersion = comps[0].PackageVersion
	}
	switch {
	case len(problems) > 0:
		st.Message = strings.Join(problems, "; ")
	case st.PackageVersion == "":
		st.Message = "components run different versions: " + componentVersions(comps)
	case want != "" && st.PackageVersion != want:
		st.Message = fmt.Sprintf("runs %s, not %s", st.PackageVersion, want)
	default:
		st.Ready = true
	}
	return st
}

func formatCounts(vc []VersionCount) string {
	if len(vc) == 0 {
		return "nothing"
	}
	var parts []string
	for _, v := range vc {
		name := v.PackageVersion
		if name == "" {
			name = "(unknown)"
		}
		parts = append(parts, fmt.Sprintf("%d at %s", v.Pods, name))
	}
	return strings.Join(parts, ", ")
}

func componentVersions(comps []ComponentStatus) string {
	var parts []string
	for _, c := range comps {
		parts = append(parts, fmt.Sprintf("%s %s", c.Name, c.TargetPackageVersion))
	}
	return strings.Join(parts, ", ")
}
