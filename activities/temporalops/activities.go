package temporalops

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"kok.dev/contract/search"
)

// ActivityTerminateClusterWorkflows is TerminateClusterWorkflows's name: wire API.
const ActivityTerminateClusterWorkflows = "TerminateClusterWorkflows"

// ErrTypeBadParams marks params that no retry can fix.
const ErrTypeBadParams = "BadParams"

// pageSize is how many executions one visibility call returns: small enough that one page is
// terminated well within a heartbeat interval.
const pageSize = 100

// Activities reach the Temporal namespace kok's workflows run in.
type Activities struct {
	Client sdkclient.Client
}

// TerminateClusterWorkflowsParams names the workflows to end.
type TerminateClusterWorkflowsParams struct {
	// Cluster is their KokCluster search attribute.
	Cluster string
	// Kind is their KokKind search attribute (a workflow type name, e.g. Machine). Required: the
	// caller itself carries the same KokCluster, and must not end itself.
	Kind string
	// Reason is recorded in every terminated workflow's history.
	Reason string
}

// TerminateClusterWorkflowsResult says what was done.
type TerminateClusterWorkflowsResult struct {
	// Terminated counts the workflows this call ended; those another call or their own end got
	// to first are not counted.
	Terminated int
}

// TerminateClusterWorkflows ends every running workflow of Kind acting on Cluster, found through
// visibility page by page. It terminates each workflow ID's current run (a run that continued as
// new since the listing is ended too, since it inherits the search attributes) and heartbeats
// after each page. A workflow already closed is skipped, so the activity is safe to run again.
// Visibility is eventually consistent: a workflow started within the last seconds may be missed,
// which is why the caller first stops whatever starts them (the cluster's machine operator).
func (a *Activities) TerminateClusterWorkflows(ctx context.Context, p TerminateClusterWorkflowsParams) (TerminateClusterWorkflowsResult, error) {
	var res TerminateClusterWorkflowsResult
	if p.Cluster == "" || p.Kind == "" {
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("terminate cluster workflows: cluster (%q) and kind (%q) must both be set", p.Cluster, p.Kind), ErrTypeBadParams, nil)
	}
	query := search.RunningQuery(p.Cluster, p.Kind)
	var token []byte
	for {
		page, err := a.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: query, PageSize: pageSize, NextPageToken: token,
		})
		if err != nil {
			return res, fmt.Errorf("list workflows (%s): %w", query, err)
		}
		for _, e := range page.GetExecutions() {
			id := e.GetExecution().GetWorkflowId()
			if err := a.Client.TerminateWorkflow(ctx, id, "", p.Reason); err != nil {
				var nf *serviceerror.NotFound
				if errors.As(err, &nf) {
					continue
				}
				return res, fmt.Errorf("terminate %s: %w", id, err)
			}
			res.Terminated++
		}
		activity.RecordHeartbeat(ctx, res.Terminated)
		token = page.GetNextPageToken()
		if len(token) == 0 {
			return res, nil
		}
	}
}
