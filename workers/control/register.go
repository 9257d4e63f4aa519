package control

import (
	"go.temporal.io/sdk/activity"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/kube"
	pkiacts "kok.dev/activities/pki"
	hosted "kok.dev/activities/provider/kok"
	"kok.dev/activities/provider/process"
	"kok.dev/activities/temporalops"
	"kok.dev/workflows/cluster"
	"kok.dev/workflows/machine"
)

// Deps are the clients the control activities are built with.
type Deps struct {
	// Kube reaches the cluster whose objects this manager serves.
	Kube client.Client
	// Direct reaches the same cluster without a cache: the Cluster workflow reads its own
	// writes (status, PKI Secrets) at once. Required by RegisterMetaActivities.
	Direct client.Client
	// Operator is how the machine operators of created clusters reach Temporal.
	Operator process.Operator
	// Temporal is the client of the namespace the workflows run in: the meta activities find and
	// end a deleted cluster's workflows with it. Required by RegisterMetaActivities.
	Temporal sdkclient.Client
}

// RegisterWorkflows adds every workflow to r, under its wire name. Every worker of the control
// queues registers all of them: any replica may be handed any workflow task.
func RegisterWorkflows(r worker.Registry) {
	r.RegisterWorkflowWithOptions(machine.Workflow, workflow.RegisterOptions{Name: machine.WorkflowName})
	r.RegisterWorkflowWithOptions(cluster.Workflow, workflow.RegisterOptions{Name: cluster.WorkflowName})
	r.RegisterWorkflowWithOptions(cluster.CreateWorkflow, workflow.RegisterOptions{Name: cluster.CreateWorkflowName})
	r.RegisterWorkflowWithOptions(cluster.UpgradeWorkflow, workflow.RegisterOptions{Name: cluster.UpgradeWorkflowName})
	r.RegisterWorkflowWithOptions(cluster.HealWorkflow, workflow.RegisterOptions{Name: cluster.HealWorkflowName})
	r.RegisterWorkflowWithOptions(cluster.DeleteWorkflow, workflow.RegisterOptions{Name: cluster.DeleteWorkflowName})
	r.RegisterWorkflowWithOptions(cluster.HostedWorkflow, workflow.RegisterOptions{Name: cluster.HostedWorkflowName})
}

// named is one activity and its wire name.
type named struct {
	name string
	fn   any
}

func register(r worker.Registry, acts []named) {
	for _, a := range acts {
		r.RegisterActivityWithOptions(a.fn, activity.RegisterOptions{Name: a.name})
	}
}

// clusterActivities act on one cluster's API.
func clusterActivities(d Deps) []named {
	k := &kube.Activities{Client: d.Kube}
	return []named{
		{kube.ActivityReadMachine, k.ReadMachine},
		{kube.ActivityReportMachineStatus, k.ReportMachineStatus},
		{kube.ActivityRecordMachineEvent, k.RecordMachineEvent},
		{kube.ActivityReleaseMachine, k.ReleaseMachine},
		{kube.ActivitySetNodeSchedulable, k.SetNodeSchedulable},
	}
}

// metaActivities act on the meta cluster (Clusters, package versions, PKI Secrets, hosted
// control planes) and on Temporal.
func metaActivities(d Deps) []named {
	cp := &controlplane.Activities{Client: d.Direct, Operator: d.Operator}
	pki := &pkiacts.Activities{Client: d.Direct}
	h := &hosted.Activities{Client: d.Direct, Operator: &hosted.Operator{
		TemporalAddress: d.Operator.TemporalAddress, TemporalNamespace: d.Operator.TemporalNamespace,
		WebUI: d.Operator.WebUI, CodecKeys: []byte(d.Operator.CodecKeys),
	}}
	t := &temporalops.Activities{Client: d.Temporal}
	return []named{
		{controlplane.ActivityReadCluster, cp.ReadCluster},
		{controlplane.ActivityRenderMaster, cp.RenderMaster},
		{controlplane.ActivityCheckControlPlane, cp.CheckControlPlane},
		{controlplane.ActivityInstallAddons, cp.InstallAddons},
		{controlplane.ActivityReportClusterStatus, cp.ReportClusterStatus},
		{controlplane.ActivityRecordClusterEvent, cp.RecordClusterEvent},
		{controlplane.ActivityReleaseCluster, cp.ReleaseCluster},
		{controlplane.ActivityWatchControlPlane, cp.WatchControlPlane},
		{pkiacts.ActivityEnsureClusterPKI, pki.EnsureClusterPKI},
		{pkiacts.ActivityDeleteClusterPKI, pki.DeleteClusterPKI},
		{hosted.ActivityEnsureControlPlane, h.EnsureControlPlane},
		{hosted.ActivityDeleteControlPlane, h.DeleteControlPlane},
		{hosted.ActivityControlPlaneStatus, h.ControlPlaneStatus},
		{hosted.ActivityWatchControlPlaneStatus, h.WatchControlPlaneStatus},
		{temporalops.ActivityTerminateClusterWorkflows, t.TerminateClusterWorkflows},
	}
}

// RegisterClusterActivities adds the activities that act on one cluster's API to r.
func RegisterClusterActivities(r worker.Registry, d Deps) { register(r, clusterActivities(d)) }

// RegisterMetaActivities adds the activities of the Cluster workflow, which act on the meta
// cluster (Clusters, package versions, PKI Secrets) and on Temporal, to r.
func RegisterMetaActivities(r worker.Registry, d Deps) { register(r, metaActivities(d)) }
