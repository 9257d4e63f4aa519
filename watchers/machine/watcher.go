package machine

import (
	"context"
	"fmt"

	sdkclient "go.temporal.io/sdk/client"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/watchers/entity"
	machinewf "kok.dev/workflows/machine"
)

// packageIndex indexes Machines by the MachinePackageVersion names they reference.
const packageIndex = "kok.dev/packageVersions"

// Reconciler turns Machine changes into workflow signals.
type Reconciler struct {
	Client   client.Client
	Temporal sdkclient.Client
	// Cluster is the name of the business cluster this watcher serves (part of workflow IDs).
	Cluster string
	// WebUI is the Temporal Web UI's base URL, for links in status; empty leaves links out.
	WebUI     string
	Namespace string
}

// SetupWithManager registers the watcher and what wakes it.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &kokv1.Machine{}, packageIndex, func(o client.Object) []string {
		m := o.(*kokv1.Machine)
		out := make([]string, 0, len(m.Spec.Packages))
		for _, p := range m.Spec.Packages {
			out = append(out, p.Name+"-"+p.Version)
		}
		return out
	}); err != nil {
		return fmt.Errorf("index machines by package version: %w", err)
	}
	conditionMaps := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == kokv1.ConditionNamespace && o.GetLabels()[kokv1.LabelNode] != ""
	})
	// Nodes change status every few seconds; only registration and removal matter here (the
	// workflow waits for the kubelet to register the Node before it can make it schedulable).
	nodeLifecycle := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return true },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("machine").
		For(&kokv1.Machine{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, deletionPredicate()))).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(byNodeLabel), builder.WithPredicates(conditionMaps)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(sameName), builder.WithPredicates(nodeLifecycle)).
		Watches(&kokv1.MachinePackageVersion{}, handler.EnqueueRequestsFromMapFunc(r.byPackageVersion)).
		Complete(r)
}

// deletionPredicate lets through updates that set a deletion timestamp (generation does not
// change on delete).
func deletionPredicate() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectNew.GetDeletionTimestamp() != nil
	}}
}

func byNodeLabel(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetLabels()[kokv1.LabelNode]}}}
}

func sameName(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
}

func (r *Reconciler) byPackageVersion(ctx context.Context, o client.Object) []reconcile.Request {
	var list kokv1.MachineList
	if err := r.Client.List(ctx, &list, client.MatchingFields{packageIndex: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list machines naming a package version", "packageVersion", o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, m := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: m.Name}})
	}
	return out
}

// Reconcile ensures the finalizer, signals the Machine's workflow (starting it if needed) and
// records the workflow in status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var m kokv1.Machine
	if err := r.Client.Get(ctx, req.NamespacedName, &m); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if skip, err := entity.EnsureFinalizer(ctx, r.Client, &m, kokv1.MachineFinalizer); err != nil || skip {
		return ctrl.Result{}, err
	}
	ref, err := entity.Signal(ctx, r.Temporal, entity.Workflow{
		ID: machinewf.WorkflowID(r.Cluster, m.Name), Type: machinewf.WorkflowName, Signal: machinewf.SignalReconcile,
		Params: machinewf.Params{Cluster: r.Cluster, Machine: m.Name},
	}, r.WebUI, r.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	if m.Status.Workflow == nil || *m.Status.Workflow != *ref {
		patch := client.MergeFrom(m.DeepCopy())
		m.Status.Workflow = ref
		if err := r.Client.Status().Patch(ctx, &m, patch); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("record workflow in status: %w", err)
		}
	}
	return ctrl.Result{}, nil
}
