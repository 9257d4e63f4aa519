package integration

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"kok.dev/contract/queue"
	"kok.dev/tests/harness"
)

// TestManagerAndAgentsServeTheirQueues starts kok-manager and two kok-agents as real processes
// and checks each polls its task queue: the plumbing every later suite stands on.
func TestManagerAndAgentsServeTheirQueues(t *testing.T) {
	env := harness.Start(t, harness.Options{Manager: true, Agents: []string{"w1", "w2"}})
	// Workflows: every control shard and the legacy kok-control; activities: the rest.
	workflowQueues := queue.ControlQueues()
	queues := append(slices.Clone(workflowQueues), queue.ClusterTaskQueue("local"), queue.HostTaskQueue("w1"), queue.HostTaskQueue("w2"))
	for _, q := range queues {
		kind := enumspb.TASK_QUEUE_TYPE_ACTIVITY
		if slices.Contains(workflowQueues, q) {
			kind = enumspb.TASK_QUEUE_TYPE_WORKFLOW
		}
		harness.Eventually(t, time.Minute, func(ctx context.Context) error {
			resp, err := env.TemporalClient.DescribeTaskQueue(ctx, q, kind)
			if err != nil {
				return err
			}
			if len(resp.GetPollers()) == 0 {
				return fmt.Errorf("no poller on %s", q)
			}
			return nil
		})
	}

	// An agent killed like a crashed host stops polling; restarted, it polls again.
	env.Agents["w1"].Kill()
	restarted := time.Now()
	env.Agents["w1"].Start()
	harness.Eventually(t, time.Minute, func(ctx context.Context) error {
		resp, err := env.TemporalClient.DescribeTaskQueue(ctx, queue.HostTaskQueue("w1"), enumspb.TASK_QUEUE_TYPE_ACTIVITY)
		if err != nil {
			return err
		}
		for _, p := range resp.GetPollers() {
			if p.GetIdentity() == "kok-agent@w1" && p.GetLastAccessTime().AsTime().After(restarted) {
				return nil
			}
		}
		return fmt.Errorf("restarted agent w1 does not poll yet (pollers: %v)", resp.GetPollers())
	})
}
