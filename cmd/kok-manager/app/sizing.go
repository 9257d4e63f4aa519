package app

import (
	"fmt"

	"go.temporal.io/sdk/worker"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
)

func (s Sizing) validate() error {
	for name, v := range map[string]int{
		"--workflow-cache-size": s.WorkflowCacheSize, "--workflow-task-pollers": s.WorkflowTaskPollers,
		"--activity-task-pollers": s.ActivityTaskPollers, "--max-concurrent-workflow-tasks": s.MaxConcurrentWorkflowTasks,
		"--max-concurrent-activities": s.MaxConcurrentActivities, "--max-concurrent-reconciles": s.MaxConcurrentReconciles,
	} {
		if v < 1 {
			return fmt.Errorf("%s is %d, want at least 1", name, v)
		}
	}
	// With one of either, a worker would only ever poll its sticky queue (the SDK refuses 1).
	if s.WorkflowTaskPollers < 2 {
		return fmt.Errorf("--workflow-task-pollers is %d, want at least 2 (a sticky and a normal poller)", s.WorkflowTaskPollers)
	}
	if s.MaxConcurrentWorkflowTasks < 2 {
		return fmt.Errorf("--max-concurrent-workflow-tasks is %d, want at least 2 (a sticky and a normal task)", s.MaxConcurrentWorkflowTasks)
	}
	return nil
}

// workflowWorker are the options of one control queue's worker: workflows only.
func (s Sizing) workflowWorker() worker.Options {
	return worker.Options{
		MaxConcurrentWorkflowTaskExecutionSize: s.MaxConcurrentWorkflowTasks,
		WorkflowTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
			InitialNumberOfPollers: 2, MinimumNumberOfPollers: 1, MaximumNumberOfPollers: s.WorkflowTaskPollers,
		}),
	}
}

// activityWorker are the options of the cluster queue's worker: control activities only.
func (s Sizing) activityWorker() worker.Options {
	return worker.Options{
		MaxConcurrentActivityExecutionSize: s.MaxConcurrentActivities,
		ActivityTaskPollerBehavior: worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{
			InitialNumberOfPollers: 2, MinimumNumberOfPollers: 1, MaximumNumberOfPollers: s.ActivityTaskPollers,
		}),
	}
}

// CacheOptions keep the manager's informers to what kok reads: ConfigMaps only in kok-system
// carrying the kok.dev/node label (the Condition ConfigMaps; a cluster-wide ConfigMap cache holds
// every application's config), and no object's managedFields (often half an object's size). Nodes
// are watched as metadata only (the Machine watcher's OnlyMetadata watch).
func CacheOptions() cache.Options {
	hasNode, err := labels.NewRequirement(kokv1.LabelNode, selection.Exists, nil)
	if err != nil {
		panic(fmt.Sprintf("label requirement %s: %v", kokv1.LabelNode, err))
	}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[ctrlclient.Object]cache.ByObject{
			&corev1.ConfigMap{}: {
				Namespaces: map[string]cache.Config{kokv1.ConditionNamespace: {}},
				Label:      labels.NewSelector().Add(*hasNode),
			},
		},
	}
}

// ClientOptions send the manager client's reads of some kinds to the API server: a typed read of a Node
// (activities/kube's SetNodeSchedulable) through the cache would start a second, full-object Node
// informer beside the watcher's metadata-only one, holding every Node's status and images.
func ClientOptions() ctrlclient.Options {
	return ctrlclient.Options{Cache: &ctrlclient.CacheOptions{DisableFor: []ctrlclient.Object{&corev1.Node{}}}}
}
