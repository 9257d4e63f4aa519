package search

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"go.temporal.io/api/operatorservice/v1"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	kokv1 "kok.dev/api/v1alpha1"
)

var (
	// Cluster is the business cluster a workflow acts on (KokCluster).
	Cluster = temporal.NewSearchAttributeKeyKeyword(kokv1.SearchAttributeCluster)
	// Kind is the workflow's kind (KokKind): its registered workflow type name (Machine,
	// Cluster, ClusterCreate, ...).
	Kind = temporal.NewSearchAttributeKeyKeyword(kokv1.SearchAttributeKind)
)

// KindMachine is the KokKind of Machine workflows (their workflow type name): the Cluster
// workflows find a deleted cluster's Machine workflows by it without importing them.
const KindMachine = "Machine"

// Definitions are the search attributes a Temporal namespace must define before kok starts
// workflows in it (a start carrying an undefined attribute is refused).
func Definitions() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		kokv1.SearchAttributeCluster: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		kokv1.SearchAttributeKind:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
	}
}

// Attributes are the search attributes of a workflow of kind acting on cluster.
func Attributes(cluster, kind string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(Cluster.ValueSet(cluster), Kind.ValueSet(kind))
}

// RunningQuery is the visibility query for the running workflows of kind acting on cluster.
func RunningQuery(cluster, kind string) string {
	return fmt.Sprintf("%s = %s AND %s = %s AND ExecutionStatus = 'Running'",
		kokv1.SearchAttributeCluster, quote(cluster), kokv1.SearchAttributeKind, quote(kind))
}

// quote makes s a visibility-query string literal. Cluster names are DNS labels, so this only
// matters for input that is already wrong; it must not become part of the query syntax.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// EnsureDefined defines kok's search attributes in namespace where they are missing (run again,
// it changes nothing), then waits until the frontend accepts a query by them: a server learns of
// a new definition when it next refreshes its namespace cache (up to about 10 s), and refuses a
// workflow start carrying it until then. Installations do this once with the Temporal CLI
// (docs/operations.md); the embedded dev server and the test servers call it on start.
func EnsureDefined(ctx context.Context, c client.Client, namespace string) error {
	op := c.OperatorService()
	have, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range Definitions() {
		got, ok := have.GetCustomAttributes()[name]
		switch {
		case !ok:
			missing[name] = typ
		case got != typ:
			return fmt.Errorf("namespace %s defines search attribute %s as %s, kok needs %s", namespace, name, got, typ)
		}
	}
	if len(missing) > 0 {
		if _, err := op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}); err != nil {
			return fmt.Errorf("add search attributes %v to namespace %s: %w", missing, namespace, err)
		}
	}
	probe := &workflowservice.ListWorkflowExecutionsRequest{Namespace: namespace, PageSize: 1, Query: RunningQuery("-", "-")}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := c.WorkflowService().ListWorkflowExecutions(ctx, probe)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s does not accept queries by %s and %s yet: %w (last error: %w)",
				namespace, kokv1.SearchAttributeCluster, kokv1.SearchAttributeKind, ctx.Err(), err)
		case <-tick.C:
		}
	}
}
