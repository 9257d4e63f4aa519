package entity

import (
	"context"
	"fmt"

	sdkclient "go.temporal.io/sdk/client"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
	"kok.dev/contract/search"
	"kok.dev/internal/tclient"
)

// EnsureFinalizer adds finalizer to a live object. It returns skip when the object is being
// deleted and no longer carries the finalizer: its workflow has already let it go.
//
// The patch carries the object's resourceVersion (an optimistic lock): a merge patch of
// metadata.finalizers replaces the whole list, so without the lock it would drop a finalizer
// another controller added since our read. A conflict is returned and the request retried.
func EnsureFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) (skip bool, err error) {
	deleting := !obj.GetDeletionTimestamp().IsZero()
	has := controllerutil.ContainsFinalizer(obj, finalizer)
	switch {
	case deleting && !has:
		return true, nil
	case !deleting && !has:
		patch := client.MergeFromWithOptions(obj.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(obj, finalizer)
		if err := c.Patch(ctx, obj, patch); err != nil {
			return false, fmt.Errorf("add finalizer: %w", err)
		}
	}
	return false, nil
}

// Workflow names an entity workflow and how to start it.
type Workflow struct {
	ID, Type, Signal string
	// SignalArg is the signal's payload; nil sends none.
	SignalArg any
	Params    any
	// Cluster is the business cluster the workflow acts on: its KokCluster search attribute.
	// Its KokKind is Type.
	Cluster string
}

// StartOptions are how the watchers start w: on the control shard of its ID, with its search
// attributes. Signal-with-start never starts a second run of a running ID.
func StartOptions(w Workflow) sdkclient.StartWorkflowOptions {
	return sdkclient.StartWorkflowOptions{
		ID:                    w.ID,
		TaskQueue:             queue.ControlShardQueue(w.ID),
		TypedSearchAttributes: search.Attributes(w.Cluster, w.Type),
	}
}

// Signal sends w's signal, starting the workflow on its control shard when it is not running,
// and returns the reference that status records (with a Web UI link when webUI is set). A
// running workflow keeps the queue it was started on (also the legacy kok-control).
func Signal(ctx context.Context, tc sdkclient.Client, w Workflow, webUI, namespace string) (*kokv1.WorkflowRef, error) {
	run, err := tc.SignalWithStartWorkflow(ctx, w.ID, w.Signal, w.SignalArg, StartOptions(w), w.Type, w.Params)
	if err != nil {
		return nil, fmt.Errorf("signal workflow %s: %w", w.ID, err)
	}
	ref := &kokv1.WorkflowRef{ID: w.ID, RunID: run.GetRunID()}
	if webUI != "" {
		ref.URL = tclient.WebUIURL(webUI, namespace, w.ID, "")
	}
	return ref, nil
}

// RecordWorkflow writes ref into the status field (a pointer into obj's status) unless it is
// there already. An object deleted meanwhile is no error: its workflow lets it go.
func RecordWorkflow(ctx context.Context, c client.Client, obj client.Object, field **kokv1.WorkflowRef, ref *kokv1.WorkflowRef) error {
	if *field != nil && **field == *ref {
		return nil
	}
	patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
	*field = ref
	if err := c.Status().Patch(ctx, obj, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("record workflow in status: %w", err)
	}
	return nil
}

// ReferenceIndex indexes the objects of kind obj under field by the names refs returns (the
// package versions an entity names) and returns the map function that wakes every indexed object
// naming a changed one. list is obj's list type; the objects are cluster-scoped.
func ReferenceIndex(ctx context.Context, mgr ctrl.Manager, obj client.Object, list client.ObjectList, field string, refs func(client.Object) []string) (handler.MapFunc, error) {
	if err := mgr.GetFieldIndexer().IndexField(ctx, obj, field, refs); err != nil {
		return nil, fmt.Errorf("index %T by %s: %w", obj, field, err)
	}
	reader := mgr.GetCache()
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		l := list.DeepCopyObject().(client.ObjectList)
		if err := reader.List(ctx, l, client.MatchingFields{field: o.GetName()}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "list objects naming a package version", "index", field, "name", o.GetName())
			return nil
		}
		var out []reconcile.Request
		_ = apimeta.EachListItem(l, func(item runtime.Object) error {
			if m, ok := item.(client.Object); ok {
				out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: m.GetName()}})
			}
			return nil
		})
		return out
	}, nil
}
