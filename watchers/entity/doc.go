// Package entity holds what every watcher of an entity workflow does the same way: keep the
// kind's finalizer, and signal the object's workflow, starting it when it is not running.
package entity
