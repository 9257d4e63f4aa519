package entity

import (
	"context"
	"fmt"

	sdkclient "go.temporal.io/sdk/client"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
	"kok.dev/internal/tclient"
)

// EnsureFinalizer adds finalizer to a live object. It returns skip when the object is being
// deleted and no longer carries the finalizer: its workflow has already let it go.
func EnsureFinalizer(ctx context.Context, c client.Client, obj client.Object, finalizer string) (skip bool, err error) {
	deleting := !obj.GetDeletionTimestamp().IsZero()
	has := controllerutil.ContainsFinalizer(obj, finalizer)
	switch {
	case deleting && !has:
		return true, nil
	case !deleting && !has:
		patch := client.MergeFrom(obj.DeepCopyObject().(client.Object))
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
	Params           any
}

// Signal sends w's signal, starting the workflow on the control queue when it is not running,
// and returns the reference that status records (with a Web UI link when webUI is set).
func Signal(ctx context.Context, tc sdkclient.Client, w Workflow, webUI, namespace string) (*kokv1.WorkflowRef, error) {
	run, err := tc.SignalWithStartWorkflow(ctx, w.ID, w.Signal, nil,
		sdkclient.StartWorkflowOptions{ID: w.ID, TaskQueue: queue.ControlTaskQueue}, w.Type, w.Params)
	if err != nil {
		return nil, fmt.Errorf("signal workflow %s: %w", w.ID, err)
	}
	ref := &kokv1.WorkflowRef{ID: w.ID, RunID: run.GetRunID()}
	if webUI != "" {
		ref.URL = tclient.WebUIURL(webUI, namespace, w.ID, "")
	}
	return ref, nil
}
