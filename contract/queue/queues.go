package queue

// ControlTaskQueue is served by every kok-manager: workflows and control activities (Kubernetes,
// metrics, PKI).
const ControlTaskQueue = "kok-control"

// HostTaskQueuePrefix + host name is the queue one kok-agent serves. A queue per host lets a
// workflow address one machine, and Temporal's task-queue pollers tell whether its agent is alive.
const HostTaskQueuePrefix = "kok-host-"

// HostTaskQueue is the task queue of the agent on host.
func HostTaskQueue(host string) string { return HostTaskQueuePrefix + host }

// ClusterTaskQueuePrefix + cluster name is the queue of the control activities that act on one
// business cluster's API (Machines, Nodes, ConfigMaps). It is served by that cluster's machine
// operator, the one process holding that cluster's credentials; workflows themselves run on
// ControlTaskQueue, wherever a worker is free.
const ClusterTaskQueuePrefix = "kok-cluster-"

// ClusterTaskQueue is the control-activity queue of one business cluster.
func ClusterTaskQueue(cluster string) string { return ClusterTaskQueuePrefix + cluster }
