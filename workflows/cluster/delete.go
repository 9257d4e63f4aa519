package cluster

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	pkiacts "kok.dev/activities/pki"
	"kok.dev/activities/provider/process"
	"kok.dev/activities/temporalops"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/contract/queue"
	"kok.dev/contract/search"
)

// changeTerminateMachines: ClusterDelete ends the deleted cluster's Machine workflows after its
// masters are gone (runs started before keep the old command sequence).
const changeTerminateMachines = "delete-terminates-machine-workflows"

// terminateTimeout bounds ending every Machine workflow of a cluster: 10,000 at a few
// milliseconds each, paged by 100 with a heartbeat per page.
const (
	terminateTimeout   = 30 * time.Minute
	terminateHeartbeat = time.Minute
)

var opsActs *temporalops.Activities

func terminateCtx(ctx workflow.Context, meta string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: queue.ClusterTaskQueue(meta), StartToCloseTimeout: terminateTimeout,
		HeartbeatTimeout: terminateHeartbeat, RetryPolicy: metaRetry,
	})
}

// DeleteWorkflow tears the control plane down: on every master the components stop in
// reverse start order and are removed, then the cluster's files and etcd data go; last the
// PKI Secrets; between the two, the cluster's Machine workflows are ended. Removing what is
// already gone succeeds, so a repeated delete is harmless.
func DeleteWorkflow(ctx workflow.Context, p OpParams) (OpResult, error) {
	s := p.State
	o := &op{cluster: p.Cluster, meta: p.MetaCluster, s: &s, view: p.View}
	operation := &controlplane.OperationReport{Type: string(kokv1.ClusterOperationDelete), StartedAt: workflow.Now(ctx)}
	order := []string{MachineOperator, KubeScheduler, KubeControllerManager, KubeAPIServer, Etcd}
	for _, m := range s.Masters {
		operation.Step, operation.Message = "remove "+m.Host, "stopping and removing every component, then the cluster's data"
		if err := o.report(ctx, kokv1.ClusterDeleting, operation, condition("Ready", false, "Deleting", "the control plane is being deleted")); err != nil {
			return OpResult{State: s}, err
		}
		for i, comp := range order {
			params := hostapi.RemovePackageParams{Name: process.PackageName(p.Cluster, comp)}
			if i == len(order)-1 {
				params.Purge = []string{process.Dir(p.Cluster), "/var/lib/kok/clusters/" + p.Cluster}
			}
			if err := workflow.ExecuteActivity(hostCtx(ctx, m.Host, installTimeout), hostActs.RemovePackage, params).Get(ctx, nil); err != nil {
				return OpResult{State: s}, fmt.Errorf("remove %s from %s: %w", comp, m.Host, err)
			}
		}
	}
	// Its machine operator is gone now, so nothing starts Machine workflows for this cluster any
	// more: end those still running, which would otherwise wait forever on kok-cluster-<name>.
	if workflow.GetVersion(ctx, changeTerminateMachines, workflow.DefaultVersion, 1) >= 1 {
		operation.Step, operation.Message = "machines", "ending the cluster's Machine workflows"
		if err := o.report(ctx, kokv1.ClusterDeleting, operation); err != nil {
			return OpResult{State: s}, err
		}
		params := temporalops.TerminateClusterWorkflowsParams{
			Cluster: p.Cluster, Kind: search.KindMachine, Reason: "Cluster " + p.Cluster + " is being deleted",
		}
		if err := workflow.ExecuteActivity(terminateCtx(ctx, p.MetaCluster), opsActs.TerminateClusterWorkflows, params).Get(ctx, nil); err != nil {
			return OpResult{State: s}, err
		}
	}
	operation.Step, operation.Message = "pki", "deleting the PKI Secrets"
	if err := o.report(ctx, kokv1.ClusterDeleting, operation); err != nil {
		return OpResult{State: s}, err
	}
	if err := workflow.ExecuteActivity(o.metaCtx(ctx), pkiActs.DeleteClusterPKI, pkiacts.DeleteClusterPKIParams{Cluster: p.Cluster}).Get(ctx, nil); err != nil {
		return OpResult{State: s}, err
	}
	s.Created = false
	return OpResult{State: s}, nil
}
