// Package cluster is the Cluster workflow family: one entity workflow per business cluster that
// keeps its control plane at spec, with a child workflow per operation (create, upgrade,
// rollback, heal, delete) so each has its own page in the Web UI.
//
// This folder holds the pure decisions first (decide.go): what an edit means, the order
// components change on a master, the canary, heal or escalate. They are table-tested and used
// by the workflows as they land.
package cluster
