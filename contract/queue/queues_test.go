package queue

import (
	"fmt"
	"slices"
	"testing"
)

// The shard of a workflow ID is wire API: a changed hash sends new starts of a running workflow
// ID to another queue. These values pin it.
func TestControlShardQueueIsStable(t *testing.T) {
	for id, want := range map[string]string{
		"Machine/local/m1":   "kok-control-13",
		"Cluster/c1":         "kok-control-10",
		"Machine/prod/node0": "kok-control-13",
		"":                   "kok-control-5", // the fnv32a offset basis % 16
	} {
		if got := ControlShardQueue(id); got != want {
			t.Errorf("ControlShardQueue(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestControlShardsSpreadOneCluster(t *testing.T) {
	seen := map[string]int{}
	for i := range 10000 {
		seen[ControlShardQueue(fmt.Sprintf("Machine/big/node-%05d", i))]++
	}
	if len(seen) != ControlShards {
		t.Fatalf("10,000 Machines of one cluster land on %d shards, want %d", len(seen), ControlShards)
	}
	for q, n := range seen {
		// 625 each when even; allow ±20 %.
		if n < 500 || n > 750 {
			t.Errorf("%s holds %d of 10,000 Machines", q, n)
		}
		if !slices.Contains(ControlQueues(), q) {
			t.Errorf("%s is not among ControlQueues", q)
		}
	}
	if qs := ControlQueues(); len(qs) != ControlShards+1 || qs[len(qs)-1] != ControlTaskQueue {
		t.Errorf("ControlQueues() = %v, want the %d shards then %s", qs, ControlShards, ControlTaskQueue)
	}
}
