package control

import (
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/kube"
	"kok.dev/workflows/machine"
)

// Deps are the clients the control activities are built with.
type Deps struct {
	// Kube reaches the cluster whose objects this manager serves.
	Kube client.Client
}

// RegisterWorkflows adds every workflow to r, under its wire name. Every worker of the control
// queue registers all of them: any replica may be handed any workflow task.
func RegisterWorkflows(r worker.Registry) {
	r.RegisterWorkflowWithOptions(machine.Workflow, workflow.RegisterOptions{Name: machine.WorkflowName})
}

// RegisterClusterActivities adds the activities that act on one cluster's API to r.
func RegisterClusterActivities(r worker.Registry, d Deps) {
	r.RegisterActivity(&kube.Activities{Client: d.Kube})
}
