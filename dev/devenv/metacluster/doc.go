// Package metacluster runs the local meta cluster from real binaries: etcd, kube-apiserver and
// kube-controller-manager (so garbage collection and namespace deletion work), with their
// data, certificates and kubeconfigs kept in a state directory so that a restart finds every
// object again. It also installs kok's CRDs and waits until the API serves them.
//
// Layout of the state directory:
//
//	etcd/                               etcd data
//	pki/                                CA, serving and client certificates, service-account key
//	logs/<component>.log                each component's output
//	meta.kubeconfig                     admin (system:masters) access
//	kube-controller-manager.kubeconfig  the controller manager's own identity
package metacluster
