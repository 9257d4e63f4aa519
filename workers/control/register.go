package control

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/kube"
	pkiacts "kok.dev/activities/pki"
	hosted "kok.dev/activities/provider/kok"
	"kok.dev/activities/provider/process"
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
}

// RegisterWorkflows adds every workflow to r, under its wire name. Every worker of the control
// queue registers all of them: any replica may be handed any workflow task.
func RegisterWorkflows(r worker.Registry) {
	r.RegisterWorkflowWithOptions(machine.Workflow, workflow.RegisterOptions{Name: machine.WorkflowName})
	r.RegisterWorkflowWithOptions(cluster.Workflow, workflow.RegisterOptions{Name: cluster.WorkflowName})
	r.RegisterWorkflowWithOptions(cluster.CreateWorkflow, workflow.RegisterOptions{Name: cluster.CreateWorkflowName})
	r.RegisterWorkflowWithOptions(cluster.UpgradeWorkflow, workflow.RegisterOptions{Name: cluster.UpgradeWorkflowName})
	r.RegisterWorkflowWithOptions(cluster.HealWorkflow, workflow.RegisterOptions{Name: cluster.HealWorkflowName})
	r.RegisterWorkflowWithOptions(cluster.DeleteWorkflow, workflow.RegisterOptions{Name: cluster.DeleteWorkflowName})
	r.RegisterWorkflowWithOptions(cluster.HostedWorkflow, workflow.RegisterOptions{Name: cluster.HostedWorkflowName})
}

// RegisterClusterActivities adds the activities that act on one cluster's API to r.
func RegisterClusterActivities(r worker.Registry, d Deps) {
	r.RegisterActivity(&kube.Activities{Client: d.Kube})
}

// RegisterMetaActivities adds the activities of the Cluster workflow, which act on the meta
// cluster (Clusters, package versions, PKI Secrets), to r.
func RegisterMetaActivities(r worker.Registry, d Deps) {
	r.RegisterActivity(&controlplane.Activities{Client: d.Direct, Operator: d.Operator})
	r.RegisterActivity(&pkiacts.Activities{Client: d.Direct})
	r.RegisterActivity(&hosted.Activities{Client: d.Direct, Operator: &hosted.Operator{
		TemporalAddress: d.Operator.TemporalAddress, TemporalNamespace: d.Operator.TemporalNamespace,
		WebUI: d.Operator.WebUI, CodecKeys: []byte(d.Operator.CodecKeys),
	}})
}
