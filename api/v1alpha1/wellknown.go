package v1alpha1

// Names shared by kok's watchers, activities and other operators.

const (
	// MachineFinalizer holds a Machine until its workflow has removed its packages from the host
	// (or, with deletionPolicy Orphan, let them be).
	MachineFinalizer = "kok.dev/machine"
	// ClusterFinalizer holds a Cluster until its workflow has torn the control plane down (or,
	// with deletionPolicy Orphan, let it be).
	ClusterFinalizer = "kok.dev/cluster"

	// ConditionNamespace holds the Condition ConfigMaps: one per node per reporting operator.
	ConditionNamespace = "kok-system"
	// LabelNode on a Condition ConfigMap names the node (= Machine) it reports on.
	LabelNode = "kok.dev/node"
	// LabelReporter on a Condition ConfigMap names the operator that reports.
	LabelReporter = "kok.dev/reporter"

	// EventNamespace holds the Events kok records about cluster-scoped objects (Machines): such
	// Events must live in some namespace, and "default" is where kubectl looks for them.
	EventNamespace = "default"

	// AnnotationRetry on a Machine asks its workflow to retry the packages it remembers as
	// failed for this generation, without a spec edit: set it to a new value (kok machine retry
	// writes the time). The workflow acts once per distinct value.
	AnnotationRetry = "kok.dev/retry"
	// AnnotationResolve on a Cluster tells its workflow that a person has looked at a cluster
	// waiting for a human: set it to a new value (kok cluster resolve writes the time). The
	// workflow acts once per distinct value.
	AnnotationResolve = "kok.dev/resolve"

	// SearchAttributeCluster and SearchAttributeKind are the Temporal search attributes (type
	// Keyword) every kok workflow carries: which business cluster it acts on and which kind of
	// operation it is (Machine, Cluster, ClusterUpgrade, ...). The Web UI filters on them, and
	// deleting a Cluster ends every workflow of that cluster by them.
	SearchAttributeCluster = "KokCluster"
	SearchAttributeKind    = "KokKind"
)
