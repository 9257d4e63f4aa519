// Package devenv is `kok dev up`, `kok dev status` and `kok dev down`: the whole local system
// on one machine, in the foreground, from one state directory.
//
// Up runs numbered steps, each ready before the next: a codec server (so the Web UI can read
// encrypted payloads), an embedded Temporal server with its Web UI (package temporalserver),
// the meta cluster from real etcd, kube-apiserver and kube-controller-manager binaries (package
// metacluster), kok's CRDs and the kok-system namespace, and kok-manager as a child process.
// Then the demo: one kok-agent per simulated host, the control-plane catalogue, the Cluster
// "demo" (which kok-manager's Cluster workflow creates on the master hosts), its node
// catalogue and one Machine per worker host (which the Machine workflows install through the
// agents), kwok to play the pods, and a Deployment. The demo's objects are ordinary objects
// applied through the API, created only when absent: a second Up recreates nothing. Once up
// it writes dev.json, which Check reads to probe each part.
//
// Everything lives in the state directory, so a second Up on it finds the same workflows
// (sqlite), objects (etcd data), certificates, codec key and hosts:
//
//	dev.lock          held (flock) by the running Up; holds its pid
//	dev.json          endpoints, ports, pids, logs and step timings of the running system
//	codec.key         the payload encryption key shared by every process
//	temporal.db       Temporal's sqlite database
//	etcd/, pki/       the meta cluster's data and certificates
//	meta.kubeconfig   admin access to the meta cluster
//	demo.kubeconfig   admin access to the demo cluster (what `kok kubeconfig demo` prints)
//	hosts/<host>/     each simulated host's root: packages, configs, data, service logs
//	cluster-packages/ the control-plane artifacts the ClusterPackageVersions name
//	packages/         the node package artifacts the MachinePackageVersions name
//	logs/             one log per component; logs/hosts/<host> links to a host's service logs
package devenv
