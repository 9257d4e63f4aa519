package cluster

import (
	"context"
	"fmt"

	sdkclient "go.temporal.io/sdk/client"
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
	clusterwf "kok.dev/workflows/cluster"
)

// packageIndex indexes Clusters by the ClusterPackageVersion they name.
const packageIndex = "kok.dev/clusterPackageVersion"

// Reconciler turns Cluster changes into workflow signals.
type Reconciler struct {
	Client   client.Client
	Temporal sdkclient.Client
	// MetaCluster names the cluster the Clusters live in: its manager serves the workflow's
	// meta activities.
	MetaCluster string
	// WebUI is the Temporal Web UI's base URL, for links in status; empty leaves links out.
	WebUI     string
	Namespace string
}

// SetupWithManager registers the watcher and what wakes it.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &kokv1.Cluster{}, packageIndex, func(o client.Object) []string {
		return []string{o.(*kokv1.Cluster).Spec.PackageVersion}
	}); err != nil {
		return fmt.Errorf("index clusters by package version: %w", err)
	}
	deleting := predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool { return e.ObjectNew.GetDeletionTimestamp() != nil }}
	return ctrl.NewControllerManagedBy(mgr).
		Named("cluster").
		For(&kokv1.Cluster{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deleting))).
		Watches(&kokv1.ClusterPackageVersion{}, handler.EnqueueRequestsFromMapFunc(r.byPackageVersion)).
		Complete(r)
}

func (r *Reconciler) byPackageVersion(ctx context.Context, o client.Object) []reconcile.Request {
	var list kokv1.ClusterList
	if err := r.Client.List(ctx, &list, client.MatchingFields{packageIndex: o.GetName()}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "list clusters naming a package version", "packageVersion", o.GetName())
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, c := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: c.Name}})
	}
	return out
}

// Reconcile ensures the finalizer, signals the Cluster's workflow (starting it if needed) and
// records the workflow in status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var c kokv1.Cluster
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if skip, err := entity.EnsureFinalizer(ctx, r.Client, &c, kokv1.ClusterFinalizer); err != nil || skip {
		return ctrl.Result{}, err
	}
	ref, err := entity.Signal(ctx, r.Temporal, entity.Workflow{
		ID: clusterwf.WorkflowID(c.Name), Type: clusterwf.WorkflowName, Signal: clusterwf.SignalReconcile,
		Params: clusterwf.Params{Cluster: c.Name, MetaCluster: r.MetaCluster},
	}, r.WebUI, r.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	if c.Status.Workflow == nil || *c.Status.Workflow != *ref {
		patch := client.MergeFrom(c.DeepCopy())
		c.Status.Workflow = ref
		if err := r.Client.Status().Patch(ctx, &c, patch); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, fmt.Errorf("record workflow in status: %w", err)
		}
	}
	return ctrl.Result{}, nil
}
