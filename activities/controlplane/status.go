package controlplane

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"kok.dev/activities/kube"
	pkiacts "kok.dev/activities/pki"
	kokv1 "kok.dev/api/v1alpha1"
)

// ClusterFinalizer holds a Cluster until its workflow has torn the control plane down.
const ClusterFinalizer = kokv1.ClusterFinalizer

// ComponentReport is one component on one master.
type ComponentReport struct {
	Name    string
	Version string
	Ready   bool
	Message string
}

// MasterReport is one master.
type MasterReport struct {
	Host       string
	Phase      string
	Ready      bool
	Components []ComponentReport
}

// OperationReport is the operation in flight.
type OperationReport struct {
	Type       string
	Step       string
	Message    string
	StartedAt  time.Time
	CanaryHost string
}

// ConditionReport is one condition.
type ConditionReport struct {
	Type    string
	Status  bool
	Reason  string
	Message string
}

// ClusterReport is every status field the workflow owns; it is sent whole each time, so the
// status always equals the workflow's view and a lost write is mended by the next one.
type ClusterReport struct {
	Name               string
	Now                time.Time
	ObservedGeneration int64
	Phase              string
	Current            string
	Previous           string
	Target             string
	Endpoint           string
	// HasKubeconfig: the admin kubeconfig Secret exists; status points at it.
	HasKubeconfig        bool
	Masters              []MasterReport
	RecentAutoRecoveries int
	Operation            *OperationReport
	Conditions           []ConditionReport
}

// ReportClusterStatus writes the report into the Cluster's status, and nothing when nothing
// changed. A Cluster that is gone is not an error.
func (a *Activities) ReportClusterStatus(ctx context.Context, r ClusterReport) error {
	var c kokv1.Cluster
	if err := a.Client.Get(ctx, types.NamespacedName{Name: r.Name}, &c); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("get cluster %s: %w", r.Name, err)
	}
	before := c.DeepCopy()
	st := &c.Status
	st.Phase = kokv1.ClusterPhase(r.Phase)
	if r.ObservedGeneration > st.ObservedGeneration {
		st.ObservedGeneration = r.ObservedGeneration
	}
	st.CurrentPackageVersion, st.PreviousPackageVersion, st.TargetPackageVersion = r.Current, r.Previous, r.Target
	st.Endpoint = r.Endpoint
	st.KubeconfigSecretRef = nil
	if r.HasKubeconfig {
		st.KubeconfigSecretRef = &kokv1.SecretKeyRef{
			Namespace: pkiacts.Namespace(r.Name), Name: pkiacts.SecretName(r.Name, pkiacts.KubeconfigPart("admin")), Key: pkiacts.KeyKubeconfig,
		}
	}
	st.Masters, st.ReadyMasters = nil, 0
	for _, m := range r.Masters {
		ms := kokv1.MasterStatus{Host: m.Host, Phase: kokv1.MasterPhase(m.Phase), Ready: m.Ready}
		for _, cr := range m.Components {
			ms.Components = append(ms.Components, kokv1.MasterComponentStatus{
				Name: kokv1.ControlPlaneComponentName(cr.Name), Version: cr.Version, Ready: cr.Ready, Message: truncate(cr.Message, 4096),
			})
		}
		if m.Ready {
			st.ReadyMasters++
		}
		st.Masters = append(st.Masters, ms)
	}
	st.RecentAutoRecoveries = int32(r.RecentAutoRecoveries)
	st.Operation = nil
	if o := r.Operation; o != nil {
		started := metav1.NewTime(o.StartedAt)
		st.Operation = &kokv1.ClusterOperation{
			Type: kokv1.ClusterOperationType(o.Type), Step: truncate(o.Step, 256), Message: truncate(o.Message, 4096),
			StartedAt: &started, CanaryHost: o.CanaryHost,
		}
	}
	for _, cond := range r.Conditions {
		status := metav1.ConditionFalse
		if cond.Status {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: cond.Type, Status: status, Reason: cond.Reason, Message: truncate(cond.Message, 32768),
			ObservedGeneration: r.ObservedGeneration, LastTransitionTime: metav1.NewTime(r.Now),
		})
	}
	if equality.Semantic.DeepEqual(before.Status, c.Status) {
		return nil
	}
	if err := a.Client.Status().Update(ctx, &c); err != nil {
		return fmt.Errorf("update status of cluster %s: %w", r.Name, err)
	}
	return nil
}

// ClusterEventParams is one Event on a Cluster.
type ClusterEventParams struct {
	Name    string
	Warning bool
	Reason  string
	Message string
	Now     time.Time
}

// RecordClusterEvent writes an Event about the Cluster; a retried activity writes it once.
func (a *Activities) RecordClusterEvent(ctx context.Context, p ClusterEventParams) error {
	var c kokv1.Cluster
	if err := a.Client.Get(ctx, types.NamespacedName{Name: p.Name}, &c); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	typ := corev1.EventTypeNormal
	if p.Warning {
		typ = corev1.EventTypeWarning
	}
	// Keyed by time and content: the workflow passes its own clock, so a retry is the same Event.
	key := fmt.Sprintf("%d/%s/%s", p.Now.UnixNano(), p.Reason, p.Message)
	ref := corev1.ObjectReference{APIVersion: kokv1.SchemeGroupVersion.String(), Kind: "Cluster", Name: c.Name, UID: c.UID}
	return kube.CreateEvent(ctx, a.Client, ref, key, kube.EventSpec{
		Type: typ, Reason: p.Reason, Message: truncate(p.Message, 1024), Time: p.Now,
		Component: "kok-cluster-workflow", Controller: "kok.dev/cluster",
	})
}

// ReleaseCluster removes the finalizer, letting a deleted Cluster go.
func (a *Activities) ReleaseCluster(ctx context.Context, p ReadClusterParams) error {
	var c kokv1.Cluster
	if err := a.Client.Get(ctx, types.NamespacedName{Name: p.Name}, &c); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	if !controllerutil.RemoveFinalizer(&c, ClusterFinalizer) {
		return nil
	}
	if err := a.Client.Update(ctx, &c); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("release cluster %s: %w", p.Name, err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
