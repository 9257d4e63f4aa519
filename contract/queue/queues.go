package queue

import (
	"hash/fnv"
	"strconv"
)

// ControlTaskQueue is the unsharded workflow queue of earlier releases. Every kok-manager that runs
// workflows still polls it, so runs started there before the shards existed keep going; nothing
// new is started on it.
const ControlTaskQueue = "kok-control"

// ControlShards is how many workflow task queues the control workflows are spread over. It is wire
// API: the watchers that start workflows and the workers that poll must agree on it, so changing it
// strands every run whose queue no worker polls any more. Sixteen shards let one 10,000-node
// cluster spread over every worker replica (up to 16) and keep each queue's matching partitions
// busy; see docs/design/2026-12-02-workers-and-watchers.md.
const ControlShards = 16

// ControlShardPrefix + shard number is a workflow task queue of the control workflows.
const ControlShardPrefix = ControlTaskQueue + "-"

// ControlShardQueue is the workflow task queue a workflow with this ID starts on:
// kok-control-<fnv32a(id) % ControlShards>. Sharding by workflow ID (not by cluster) spreads one
// big cluster's Machines over every shard. Children and continue-as-new runs stay on their
// parent's queue.
func ControlShardQueue(workflowID string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(workflowID))
	return ControlShardPrefix + strconv.Itoa(int(h.Sum32()%ControlShards))
}

// ControlQueues are every queue a workflow worker polls: the shards, then the legacy
// ControlTaskQueue.
func ControlQueues() []string {
	out := make([]string, 0, ControlShards+1)
	for i := range ControlShards {
		out = append(out, ControlShardPrefix+strconv.Itoa(i))
	}
	return append(out, ControlTaskQueue)
}

// HostTaskQueuePrefix + host name is the queue one kok-agent serves. A queue per host lets a
// workflow address one machine, and Temporal's task-queue pollers tell whether its agent is alive.
const HostTaskQueuePrefix = "kok-host-"

// HostTaskQueue is the task queue of the agent on host.
func HostTaskQueue(host string) string { return HostTaskQueuePrefix + host }

// ClusterTaskQueuePrefix + cluster name is the queue of the control activities that act on one
// business cluster's API (Machines, Nodes, ConfigMaps). It is served by that cluster's machine
// operator, the one process holding that cluster's credentials; workflows themselves run on the
// control shards, wherever a worker is free.
const ClusterTaskQueuePrefix = "kok-cluster-"

// ClusterTaskQueue is the control-activity queue of one business cluster.
func ClusterTaskQueue(cluster string) string { return ClusterTaskQueuePrefix + cluster }
