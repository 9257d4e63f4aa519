// Package v1alpha1 is the kok API, group kok.dev, version v1alpha1: the declared final state that
// kok drives real clusters and nodes towards, and the status through which it reports progress.
//
// Meta-cluster kinds: Cluster and ClusterPackageVersion. Business-cluster kinds: Machine,
// MachinePackageVersion, NodeRollout, NodeFault and RateLimitPolicy. Every kind is cluster-scoped.
// Package versions are immutable once created, so a rollback is always a pointer back to an
// object that still exists unchanged.
//
// The package depends only on k8s.io/apimachinery so that lean binaries (kok-agent) can share
// its types without linking a Kubernetes client.
//
// +kubebuilder:object:generate=true
// +groupName=kok.dev
package v1alpha1
