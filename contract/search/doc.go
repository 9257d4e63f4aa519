// Package search holds the typed Temporal search attribute keys every kok workflow carries
// (KokCluster, KokKind) and the visibility queries built on them: wire API shared by the
// watchers that start workflows, the workflows that start children, the activities that find
// workflows again, and the servers that must define the attributes.
package search
