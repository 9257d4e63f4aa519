package machine

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/contract/queue"
	"kok.dev/workflows/internal/replaytest"
)

var recordAtRest = flag.Bool("record-at-rest", false, "re-record testdata/at-rest-v2.json from a run of the machine-at-rest-v2 loop")

// TestRecordAtRestHistory records testdata/at-rest-v2.json: the machine-at-rest-v2 loop
// installing two packages, looking at the host at rest (with a batch of local repairs), being
// upgraded after a signal with inputs, then deleted. TestReplayCommittedHistories replays it
// with every other committed history. Run it only when this loop changes on purpose (with
// -record-at-rest), and never with -record, which re-records the legacy history.
func TestRecordAtRestHistory(t *testing.T) {
	if !*recordAtRest {
		t.Skip("run with -record-at-rest to re-record testdata/at-rest-v2.json")
	}
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	w := newWorld(pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"))
	w.desired.UID = "uid-1"
	w.desired.DriftInterval = 2 * time.Second
	w.now = time.Now
	srv.NewWorker(queue.ControlTaskQueue, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	})
	acts := w.activities()
	kubeNames := map[string]bool{"ReadMachine": true, "ReportMachineStatus": true, "RecordMachineEvent": true, "SetNodeSchedulable": true, "ReleaseMachine": true}
	srv.NewWorker(queue.ClusterTaskQueue("c1"), func(r worker.Registry) {
		for _, name := range sortedKeys(acts) {
			if kubeNames[name] {
				r.RegisterActivityWithOptions(acts[name], activity.RegisterOptions{Name: name})
			}
		}
	})
	srv.NewWorker(queue.HostTaskQueue("h1"), func(r worker.Registry) {
		for _, name := range sortedKeys(acts) {
			if !kubeNames[name] {
				r.RegisterActivityWithOptions(acts[name], activity.RegisterOptions{Name: name})
			}
		}
	})

	ctx := context.Background()
	id := WorkflowID("c1", "n1")
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue.ControlTaskQueue}, WorkflowName, Params{Cluster: "c1", Machine: "n1"})
	require.NoError(t, err)
	waitFor := func(what string, ok func() bool) {
		require.Eventually(t, func() bool { w.mu.Lock(); defer w.mu.Unlock(); return ok() }, time.Minute, 20*time.Millisecond, what)
	}
	waitFor("installed and ready", func() bool {
		return len(w.reports) > 0 && w.reports[len(w.reports)-1].Phase == string(kokv1.MachineReady)
	})
	w.update(func(w *fakeWorld) {
		w.localRepairs = []hostapi.LocalRepair{{Seq: 1, Package: "runtime", Version: "1", What: "restarted stopped service runtime"}}
	})
	waitFor("repairs recorded", func() bool { return len(w.events) == 1 })
	w.update(func(w *fakeWorld) {
		w.desired.Generation = 2
		w.desired.Packages = []hostapi.PackageSpec{pkg("runtime", "1"), pkg("kubelet", "v2", "runtime")}
	})
	require.NoError(t, c.SignalWorkflow(ctx, id, "", SignalReconcile, ReconcileSignal{Inputs: "inputs-2"}))
	waitFor("upgraded", func() bool {
		return w.installed["kubelet"].Version == "v2" && w.reports[len(w.reports)-1].Phase == string(kokv1.MachineReady)
	})
	w.update(func(w *fakeWorld) { w.desired.Deleting = true })
	require.NoError(t, c.SignalWorkflow(ctx, id, "", SignalReconcile, nil))
	require.NoError(t, run.Get(ctx, nil))

	path := filepath.Join("testdata", "at-rest-v2.json")
	n, err := replaytest.SaveHistory(ctx, c, id, run.GetRunID(), path)
	require.NoError(t, err)
	fmt.Printf("recorded %d events into %s\n", n, path)
}
