// Package pki generates the certificates and keys of a business cluster's control plane: three
// certificate authorities (cluster, etcd, front proxy), the serving and client certificates of
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler, the admin identity and the
// service-account signing key.
//
// It does no I/O: the caller passes what it has stored (a Bundle of PEM blocks) and stores what
// comes back. Complete is the only entry point that matters for a running cluster: it keeps
// every authority and certificate that is still good and issues only what is missing, about to
// expire, or no longer covers the cluster's hosts, so running it again never rotates trust by
// accident.
package pki
