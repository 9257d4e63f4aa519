package kube

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Activities talk to one cluster's API server through Client.
type Activities struct {
	Client client.Client
}

// SetNodeSchedulableParams names a node and whether it may take new pods.
type SetNodeSchedulableParams struct {
	Node        string
	Schedulable bool
}

// SetNodeSchedulableResult says whether the call changed the node.
type SetNodeSchedulableResult struct {
	Changed bool
}

// ErrTypeNodeNotFound is the application error type of a node that does not exist: retrying
// will not make it appear, the caller decides (wait for registration, or report).
const ErrTypeNodeNotFound = "NodeNotFound"

// SetNodeSchedulable cordons or uncordons a node. Only the Machine workflow calls it: one owner
// for schedulability means a gate turning False can never be undone by another operator.
func (a *Activities) SetNodeSchedulable(ctx context.Context, p SetNodeSchedulableParams) (SetNodeSchedulableResult, error) {
	var node corev1.Node
	if err := a.Client.Get(ctx, types.NamespacedName{Name: p.Node}, &node); err != nil {
		if apierrors.IsNotFound(err) {
			return SetNodeSchedulableResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("node %s does not exist", p.Node), ErrTypeNodeNotFound, err)
		}
		return SetNodeSchedulableResult{}, fmt.Errorf("get node %s: %w", p.Node, err)
	}
	if node.Spec.Unschedulable == !p.Schedulable {
		return SetNodeSchedulableResult{}, nil
	}
	patch := client.MergeFromWithOptions(node.DeepCopy(), client.MergeFromWithOptimisticLock{})
	node.Spec.Unschedulable = !p.Schedulable
	if err := a.Client.Patch(ctx, &node, patch); err != nil {
		return SetNodeSchedulableResult{}, fmt.Errorf("set node %s unschedulable=%t: %w", p.Node, !p.Schedulable, err)
	}
	return SetNodeSchedulableResult{Changed: true}, nil
}
