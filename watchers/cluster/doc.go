// Package cluster is the Cluster watcher: it keeps the finalizer on every Cluster, starts or
// signals the Cluster's workflow on every change (and when the ClusterPackageVersion it names
// appears), and records the workflow in status. It decides nothing; the workflow does.
package cluster
