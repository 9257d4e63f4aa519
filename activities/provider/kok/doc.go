// Package kok is the `kok` control-plane provider: a business cluster's etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and (when its release has one) machine operator run as
// a StatefulSet, Deployments and Services in the cluster's namespace of the meta cluster, as
// hosted-control-plane systems do.
//
// Render (pure, table-tested) turns a ClusterPackageVersion, the Cluster's spec and the provider's
// configuration into those objects; key material is never rendered, only mounted from the Secrets
// kok.dev/activities/pki keeps. The Activities apply them by server-side apply, report their
// rollout, and delete them. Their parameters and results name objects and versions, never keys.
package kok
