package machine

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"kok.dev/contract/hostapi"
	"kok.dev/workflows/internal/replaytest"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
)

var record = flag.Bool("record", false, "re-record testdata/*.json from a run on an in-process Temporal server")

// TestReplayCommittedHistories replays every committed history (testdata/*.json, and the
// *.json.gz that tests/replayrecord records) against today's workflow code: a change that would
// break running Machine workflows fails here, and must go behind workflow.GetVersion instead.
func TestReplayCommittedHistories(t *testing.T) {
	var files []string
	for _, pattern := range []string{"testdata/*.json", "testdata/*.json.gz"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.NotEmpty(t, files, "no committed histories: KOK_RECORD_HISTORIES=1 go test -run TestRecordMachine ./tests/replayrecord/")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
			h, err := replaytest.LoadHistory(f)
			require.NoError(t, err)
			require.NoError(t, r.ReplayWorkflowHistory(nil, h))
		})
	}
}

// TestRecordHistory records testdata/install-upgrade-delete.json: a Machine installed (two
// packages), upgraded, then deleted, on a real in-process server with the fake world behind real
// workers. Run it only when the workflow changes on purpose (with -record).
func TestRecordHistory(t *testing.T) {
	if !*record {
		t.Skip("run with -record to re-record testdata")
	}
	srv := temporaltest.NewServer(temporaltest.WithT(t))
	c := srv.GetDefaultClient()
	w := newWorld(pkg("runtime", "1"), pkg("kubelet", "v1", "runtime"))
	srv.NewWorker(queue.ControlTaskQueue, func(r worker.Registry) {
		r.RegisterWorkflowWithOptions(Workflow, workflow.RegisterOptions{Name: WorkflowName})
	})
	srv.NewWorker(queue.ClusterTaskQueue("c1"), func(r worker.Registry) {
		for name, fn := range map[string]any{
			"ReadMachine": w.ReadMachine, "ReportMachineStatus": w.ReportMachineStatus, "RecordMachineEvent": w.RecordMachineEvent,
			"SetNodeSchedulable": w.SetNodeSchedulable, "ReleaseMachine": w.ReleaseMachine,
		} {
			r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
		}
	})
	srv.NewWorker(queue.HostTaskQueue("h1"), func(r worker.Registry) {
		for name, fn := range map[string]any{
			"Facts": w.Facts, "EnsurePackage": w.EnsurePackage, "RemovePackage": w.RemovePackage, "CheckHealth": w.CheckHealth,
		} {
			r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
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
		w.desired.Generation = 2
		w.desired.Packages = []hostapi.PackageSpec{pkg("runtime", "1"), pkg("kubelet", "v2", "runtime")}
	})
	require.NoError(t, c.SignalWorkflow(ctx, id, "", SignalReconcile, nil))
	waitFor("upgraded", func() bool {
		return w.installed["kubelet"].Version == "v2" && w.reports[len(w.reports)-1].Phase == string(kokv1.MachineReady)
	})
	w.update(func(w *fakeWorld) { w.desired.Deleting = true })
	require.NoError(t, c.SignalWorkflow(ctx, id, "", SignalReconcile, nil))
	require.NoError(t, run.Get(ctx, nil))

	path := filepath.Join("testdata", "install-upgrade-delete.json")
	n, err := replaytest.SaveHistory(ctx, c, id, run.GetRunID(), path)
	require.NoError(t, err)
	fmt.Printf("recorded %d events into %s\n", n, path)
}
