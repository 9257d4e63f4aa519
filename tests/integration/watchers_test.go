package integration

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"kok.dev/activities/temporalops"
	kokv1 "kok.dev/api/v1alpha1"
	managerapp "kok.dev/cmd/kok-manager/app"
	"kok.dev/contract/queue"
	"kok.dev/contract/search"
	"kok.dev/tests/harness"
	machinewatcher "kok.dev/watchers/machine"
	machinewf "kok.dev/workflows/machine"
)

// startMachineWatcher runs the Machine watcher in this process with kok-manager's cache and
// client options, one reconcile at a time (so events are handled in the order they arrive), until
// the returned stop is called. No worker polls the control queues: the workflows it starts stay
// running with their signals in history, where the test counts them.
func startMachineWatcher(t *testing.T, env *harness.Env, cluster string) (stop func()) {
	t.Helper()
	skip := true
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  managerapp.CacheOptions(),
		Client:                 managerapp.ClientOptions(),
		// A restarted watcher registers the same controller name in this process again.
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	require.NoError(t, err)
	require.NoError(t, (&machinewatcher.Reconciler{
		Client: mgr.GetClient(), Temporal: env.TemporalClient, Cluster: cluster,
		Namespace: env.TemporalNamespace, MaxConcurrentReconciles: 1,
	}).SetupWithManager(mgr))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	require.True(t, mgr.GetCache().WaitForCacheSync(ctx), "watcher cache never synced")
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		require.NoError(t, <-done)
	}
	t.Cleanup(stop)
	return stop
}

// reconcileSignals are the payloads of the reconcile signals in a workflow's history, in order.
func reconcileSignals(ctx context.Context, tc sdkclient.Client, id string) ([]machinewf.ReconcileSignal, error) {
	var out []machinewf.ReconcileSignal
	it := tc.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, err
		}
		a := ev.GetWorkflowExecutionSignaledEventAttributes()
		if a == nil || a.GetSignalName() != machinewf.SignalReconcile {
			continue
		}
		var s machinewf.ReconcileSignal
		if err := converter.GetDefaultDataConverter().FromPayloads(a.GetInput(), &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// waitSignals waits until id's history holds exactly n reconcile signals and returns them.
func waitSignals(t *testing.T, tc sdkclient.Client, id string, n int) []machinewf.ReconcileSignal {
	t.Helper()
	var got []machinewf.ReconcileSignal
	harness.Eventually(t, 30*time.Second, func(ctx context.Context) error {
		var err error
		if got, err = reconcileSignals(ctx, tc, id); err != nil {
			var nf *serviceerror.NotFound
			if errors.As(err, &nf) {
				return fmt.Errorf("%s not started yet", id)
			}
			return err
		}
		if len(got) != n {
			return fmt.Errorf("%s has %d reconcile signals, want %d", id, len(got), n)
		}
		return nil
	})
	return got
}

// TestMachineWatcherSignalsOnlyChangedInputs checks that the Machine watcher signals a workflow
// only when something it reads changed, and that a restarted watcher over Machines whose
// workflows acted on their inputs signals nothing; that workflows are started on their control
// shard with kok's search attributes; and that ending a cluster's Machine workflows by those
// attributes ends them all and nothing else.
func TestMachineWatcherSignalsOnlyChangedInputs(t *testing.T) {
	env := harness.Start(t, harness.Options{Temporal: true})
	c, tc := env.Client, env.TemporalClient
	ctx := context.Background()
	const cluster = "wc"
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kokv1.ConditionNamespace}}))
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "net-m1", Namespace: kokv1.ConditionNamespace, Labels: map[string]string{kokv1.LabelNode: "m1", kokv1.LabelReporter: "net"}},
		Data:       map[string]string{"NetworkReady": "True"},
	}
	require.NoError(t, c.Create(ctx, cm))
	m1 := &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "m1"}}
	require.NoError(t, c.Create(ctx, m1))
	id1 := machinewf.WorkflowID(cluster, "m1")

	stop := startMachineWatcher(t, env, cluster)
	first := waitSignals(t, tc, id1, 1)[0]
	require.NotEmpty(t, first.Inputs, "the signal carries the inputs digest")

	t.Run("started on its shard with search attributes", func(t *testing.T) {
		desc, err := tc.DescribeWorkflowExecution(ctx, id1, "")
		require.NoError(t, err)
		info := desc.GetWorkflowExecutionInfo()
		require.Equal(t, queue.ControlShardQueue(id1), info.GetTaskQueue())
		var kc, kk string
		fields := info.GetSearchAttributes().GetIndexedFields()
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(fields[kokv1.SearchAttributeCluster], &kc))
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(fields[kokv1.SearchAttributeKind], &kk))
		require.Equal(t, cluster, kc)
		require.Equal(t, machinewf.WorkflowName, kk)
		harness.Eventually(t, 30*time.Second, func(ctx context.Context) error {
			list, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: search.RunningQuery(cluster, search.KindMachine)})
			if err != nil {
				return err
			}
			if n := len(list.GetExecutions()); n != 1 || list.GetExecutions()[0].GetExecution().GetWorkflowId() != id1 {
				return fmt.Errorf("visibility query %q finds %d workflows", search.RunningQuery(cluster, search.KindMachine), n)
			}
			return nil
		})
	})

	// A label-only edit of the Condition ConfigMap, a status write and a label on the Machine
	// change nothing the workflow reads; the Data edit after them does. Events reach the single
	// reconciler in order, so once the Data edit's signal is in history the others were handled.
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(cm), cm))
	cm.Labels["team"] = "network"
	require.NoError(t, c.Update(ctx, cm))
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(m1), m1))
	m1.Status.Phase = kokv1.MachinePhase("Ready")
	require.NoError(t, c.Status().Update(ctx, m1))
	// As kubectl label does: a patch (a PUT of the whole object would rewrite the defaulted
	// spec, 5m as 5m0s, and that is a new generation).
	require.NoError(t, c.Patch(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "m1"}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"pool":"a"}}}`))))
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(cm), cm))
	cm.Data["NetworkReady"] = "False"
	require.NoError(t, c.Update(ctx, cm))
	signals := waitSignals(t, tc, id1, 2)
	require.NotEqual(t, first.Inputs, signals[1].Inputs, "a Data change is a new digest")

	// The workflow reports the newest digest it acted on; the watcher restarts.
	stop()
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(m1), m1))
	m1.Status.ObservedInputs = signals[1].Inputs
	require.NoError(t, c.Status().Update(ctx, m1))
	startMachineWatcher(t, env, cluster)
	// m2, created after the restart's initial list, is reconciled after m1: its signal shows
	// that m1 has been looked at.
	require.NoError(t, c.Create(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "m2"}}))
	waitSignals(t, tc, machinewf.WorkflowID(cluster, "m2"), 1)
	got, err := reconcileSignals(ctx, tc, id1)
	require.NoError(t, err)
	require.Len(t, got, 2, "a restarted watcher signals no Machine whose workflow acted on its inputs")

	// And a change while it runs is signalled again.
	require.NoError(t, c.Get(ctx, client.ObjectKeyFromObject(cm), cm))
	cm.Data["NetworkReady"] = "True"
	require.NoError(t, c.Update(ctx, cm))
	signals = waitSignals(t, tc, id1, 3)
	require.Equal(t, first.Inputs, signals[2].Inputs, "the same inputs give the same digest")
}

// TestTerminateClusterWorkflowsEndsOnlyThatClustersMachines starts Machine workflows of two
// clusters and a Cluster workflow, as the watchers do, and ends one cluster's Machines.
func TestTerminateClusterWorkflowsEndsOnlyThatClustersMachines(t *testing.T) {
	env := harness.Start(t, harness.Options{Temporal: true})
	tc := env.TemporalClient
	ctx := context.Background()
	start := func(id, cluster, kind string) {
		_, err := tc.ExecuteWorkflow(ctx, sdkclient.StartWorkflowOptions{
			ID: id, TaskQueue: queue.ControlShardQueue(id), TypedSearchAttributes: search.Attributes(cluster, kind),
		}, kind)
		require.NoError(t, err)
	}
	// More than one visibility page (100).
	const doomed = 130
	var doomedIDs []string
	for i := range doomed {
		id := machinewf.WorkflowID("gone", fmt.Sprintf("n%03d", i))
		start(id, "gone", search.KindMachine)
		doomedIDs = append(doomedIDs, id)
	}
	survivors := []string{machinewf.WorkflowID("stays", "n000"), "Cluster/gone"}
	start(survivors[0], "stays", search.KindMachine)
	start(survivors[1], "gone", "Cluster")
	harness.Eventually(t, time.Minute, func(ctx context.Context) error {
		n, err := tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Query: search.RunningQuery("gone", search.KindMachine)})
		if err != nil {
			return err
		}
		if n.GetCount() != doomed {
			return fmt.Errorf("visibility counts %d running Machine workflows of cluster gone, want %d", n.GetCount(), doomed)
		}
		return nil
	})

	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	acts := &temporalops.Activities{Client: tc}
	aenv.RegisterActivity(acts)
	params := temporalops.TerminateClusterWorkflowsParams{Cluster: "gone", Kind: search.KindMachine, Reason: "cluster gone deleted"}
	val, err := aenv.ExecuteActivity(acts.TerminateClusterWorkflows, params)
	require.NoError(t, err)
	var res temporalops.TerminateClusterWorkflowsResult
	require.NoError(t, val.Get(&res))
	require.Equal(t, doomed, res.Terminated)

	for _, id := range doomedIDs {
		desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, desc.GetWorkflowExecutionInfo().GetStatus(), id)
	}
	for _, id := range survivors {
		desc, err := tc.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus(), id)
	}

	// Again (a retried activity): nothing left to end, no error. Visibility may still list some
	// as running for a moment; those are skipped as already closed.
	val, err = aenv.ExecuteActivity(acts.TerminateClusterWorkflows, params)
	require.NoError(t, err)
	require.NoError(t, val.Get(&res))
	require.Zero(t, res.Terminated)

	_, err = aenv.ExecuteActivity(acts.TerminateClusterWorkflows, temporalops.TerminateClusterWorkflowsParams{Cluster: "gone"})
	require.Error(t, err, "no kind: it would end the Cluster workflow that called it")
}
