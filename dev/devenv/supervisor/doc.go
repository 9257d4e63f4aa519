// Package supervisor runs the child processes of the local system (etcd, kube-apiserver,
// kube-controller-manager, kok-manager) so that none outlives `kok dev up`: each child gets
// its own process group and dies with its parent, its output goes to a log file, a child that
// exits on its own is reported by name, and stopping goes in reverse start order with a grace
// period before SIGKILL.
package supervisor
