package search

import (
	"fmt"
	"strings"

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
