// Package controlplane holds the meta-cluster activities of the Cluster workflow: reading a
// Cluster with its package versions resolved, rendering a master's packages from the cluster's
// PKI, checking the masters' API servers, installing kok into a new cluster, and writing the
// Cluster's status. They run on the meta cluster's queue (kok-cluster-<meta>), the only worker
// holding meta-cluster credentials; every one is idempotent.
package controlplane
