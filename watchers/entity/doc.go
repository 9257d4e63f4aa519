// Package entity holds what every watcher of an entity workflow does the same way: keep the
// kind's finalizer (with an optimistic lock), wake only on the changes the workflow reads, index
// entities by the package versions they name, signal the object's workflow (starting it on its
// control shard, with its KokCluster and KokKind search attributes) and record it in status.
package entity
