// Package clusters holds the operator's commands for Clusters (business clusters' control
// planes): `kok get clusters`, `kok describe cluster`, `kok kubeconfig` and `kok cluster
// upgrade|rollback`. Upgrade and rollback are edits of spec.packageVersion, as a GitOps tool
// would make them; the Cluster workflow does the work, and the commands follow its status to the
// end. Rendering and the reading of progress are plain functions of the objects, tested as text.
package clusters
