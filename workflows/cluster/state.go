package cluster

import (
	"time"

	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	"kok.dev/activities/provider/process"
)

// Wire names: changing one breaks running workflows and the tools that signal them.
const (
	// WorkflowName is the Cluster entity workflow's type; the operations run as children.
	WorkflowName        = "Cluster"
	CreateWorkflowName  = "ClusterCreate"
	UpgradeWorkflowName = "ClusterUpgrade"
	HealWorkflowName    = "ClusterHeal"
	DeleteWorkflowName  = "ClusterDelete"
	SignalReconcile     = "reconcile" // the Cluster changed: read it again
	SignalResolve       = "resolve"   // a human resolved what WaitingForHuman waits for
	QueryState          = "state"
)

// Child is one child workflow type: its registered name with its function, so that a child is
// started under the name it is registered with and with the parameters it takes.
type Child struct {
	Name string
	Func func(workflow.Context, OpParams) (OpResult, error)
}

// The operations, each a child of the entity. workers/control registers each Func under Name.
var (
	CreateOp  = Child{CreateWorkflowName, CreateWorkflow}
	UpgradeOp = Child{UpgradeWorkflowName, UpgradeWorkflow}
	HealOp    = Child{HealWorkflowName, HealWorkflow}
	DeleteOp  = Child{DeleteWorkflowName, DeleteWorkflow}
	HostedOp  = Child{HostedWorkflowName, HostedWorkflow}
)

// WorkflowID is the ID of the Cluster workflow of cluster: Cluster/<name>.
func WorkflowID(cluster string) string { return "Cluster/" + cluster }

// Params starts (or continues) the workflow of one Cluster.
type Params struct {
	Cluster string
	// MetaCluster names the cluster holding the Cluster object: its manager serves the meta
	// activities on kok-cluster-<MetaCluster>.
	MetaCluster string
	State       State
}

// State is what the workflow remembers between passes and runs.
type State struct {
	// Created: the control plane has been created once.
	Created bool
	// Masters are the master hosts with their addresses, in name order; Ports their ports.
	Masters []process.Master
	Ports   process.Ports
	// Running says, per master host and component, which ClusterPackageVersion it runs: the
	// truth an upgrade moves one step at a time, and a rollback moves back.
	Running map[string]map[string]string
	// Releases caches the package versions seen, by name.
	Releases map[string]controlplane.Release
	// FailedTarget is a package version whose upgrade failed and was rolled back at
	// FailedGeneration: it is not tried again until the spec changes.
	FailedTarget     string
	FailedGeneration int64
	// Recoveries are the times of automatic recoveries (the heal budget counts them).
	Recoveries []time.Time
	// WaitingForHuman says why automatic recovery stopped; a resolve signal clears it.
	WaitingForHuman string
	// Report is the status as last written.
	Report controlplane.ClusterReport
	// Ops counts operations started, to name child workflows uniquely across runs.
	Ops    int
	Passes int

	// Health is the masters' verdict the entity last acted on (empty: none yet; an operation
	// clears it, so the next pass checks afresh). WatchControlPlane returns only when what it
	// sees differs from it.
	Health controlplane.CheckResult `json:",omitempty"`
	// Resolved is the last value of the annotation kok.dev/resolve the entity has seen: each
	// new value resolves one wait for a human, and a value seen while nothing waited resolves
	// nothing later.
	Resolved string `json:",omitempty"`
}

// components are the control-plane components in start order.
var components = []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, MachineOperator}

// versionsOf maps a master's components to their versions through the release cache.
func versionsOf(running map[string]string, releases map[string]controlplane.Release) map[string]string {
	out := map[string]string{}
	// Building a map is order-independent
	//workflowcheck:ignore
	for comp, rel := range running {
		out[comp] = releases[rel].Components[comp]
	}
	return out
}

// releaseAll runs every component of rel (that rel has) — a fresh master.
func releaseAll(rel controlplane.Release) map[string]string {
	out := map[string]string{}
	for _, c := range components {
		if _, ok := rel.Components[c]; ok {
			out[c] = rel.Name
		}
	}
	return out
}

// AllAt says whether every master runs rel for every component, etcd excepted when it was
// kept at a newer version by a rollback (see ComponentOrder).
func AllAt(running map[string]map[string]string, masters []process.Master, rel string) bool {
	for _, m := range masters {
		// A yes/no answer is order-independent
		//workflowcheck:ignore
		for comp, r := range running[m.Host] {
			if r != rel && comp != Etcd {
				return false
			}
		}
	}
	return true
}
