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
)
