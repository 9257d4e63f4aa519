// Package devenv is `kok dev up` and `kok dev status`: the whole local system on one machine,
// in the foreground, from one state directory.
//
// Up starts, in order, a codec server (so the Web UI can read encrypted payloads), an embedded
// Temporal server with its Web UI (package temporalserver), the meta cluster from real etcd,
// kube-apiserver and kube-controller-manager binaries (package metacluster), kok's CRDs and the
// kok-system namespace, and kok-manager as a child process. Each part must be ready before the
// next starts, and a failure stops what already runs. Once up it writes dev.json, which Check
// reads to probe each part.
//
// Everything lives in the state directory, so a second Up on it finds the same workflows
// (sqlite), objects (etcd data), certificates and codec key:
//
//	dev.lock        held (flock) by the running Up; holds its pid
//	dev.json        endpoints, ports, pids and logs of the running system
//	codec.key       the payload encryption key shared by the manager and the codec server
//	temporal.db     Temporal's sqlite database
//	etcd/, pki/     the meta cluster's data and certificates
//	meta.kubeconfig admin access to the meta cluster
//	logs/           one log per component
package devenv
