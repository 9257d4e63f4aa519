// Package kubelet is the simulated kubelet of kok's simulated hosts: it registers its Node, renews
// the Node's Lease in kube-node-lease and keeps the Node's status Ready, as a kubelet does, so the
// control plane sees a live node while it runs and a lost one (NotReady after the grace period)
// once it stops. It runs no containers: kwok, told to manage nodes with the annotation
// kwok.x-k8s.io/node=fake, plays the container runtime for pods bound to them.
//
// Its requests are a real kubelet's, so that a benchmark of many simulated nodes measures the
// control plane, not the simulator: an update of the Lease it holds every LeaseDuration/4 (10 s;
// a read only after a conflict), a read of its Node from the API server's cache every
// StatusInterval (10 s, nodeStatusUpdateFrequency), and a status write only when the status
// differs or StatusReportInterval (5 min, nodeStatusReportFrequency) has passed.
//
// kok-sim-kubelet runs one; a fleet simulator runs thousands in one process, sharing one client:
// New(client, nodeName, opts).Run(ctx) costs one goroutine and two tickers per node.
// kok-agent never links it (the agent does not talk to the Kubernetes API).
package kubelet
