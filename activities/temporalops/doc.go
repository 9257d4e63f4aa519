// Package temporalops holds the control activities that act on Temporal itself rather than on a
// cluster or a host: finding a cluster's workflows by their KokCluster and KokKind search
// attributes and ending them, so that deleting a Cluster strands none of its Machine workflows.
package temporalops
