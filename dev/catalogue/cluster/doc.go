// Package clustercatalogue turns Kubernetes binaries built by hack/k8s-bins, plus kok-manager as
// the machine operator, into the control-plane catalogue: one tar.gz artifact per component and
// one ClusterPackageVersion per Kubernetes release, with each artifact's SHA-256, the components'
// default flags and their health checks. `make cluster-packages` writes them to
// bin/cluster-packages with a catalogue.yaml.
//
// The defaults hold only what every release and every provider shares; certificates, addresses,
// ports, data directories and cluster ranges are the provider's to add (see the note
// docs/design/2026-11-26-cluster-catalogue.md). Artifacts are reproducible (fixed timestamps,
// owner and order), so the same binaries always give the same digests and an entry of the
// catalogue can be created again from a rebuild.
package clustercatalogue
