// Package process is the `process` control-plane provider: a business cluster's etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler run as services on master hosts,
// installed and supervised by kok-agent like any node package. Render (pure, table-tested) turns
// a Cluster, its release (a ClusterPackageVersion) and its key material into one host package per
// component per master; the agent's EnsurePackage then gives the control plane what it gives
// nodes: checksums verified, a failed upgrade rolled back on the host, drift put back.
package process
