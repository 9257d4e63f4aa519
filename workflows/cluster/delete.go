package cluster

import (
	"fmt"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	pkiacts "kok.dev/activities/pki"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
)

// DeleteWorkflow tears the control plane down: on every master the components stop in
// reverse start order and are removed, then the cluster's files and etcd data go; last the
// PKI Secrets. Removing what is already gone succeeds, so a repeated delete is harmless.
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
