// Package machine is the Machine watcher: on every change to a Machine, to a Condition ConfigMap
// of its node, to a MachinePackageVersion it names, or to its Node's registration, it
// signal-with-starts the Machine workflow, and it writes the workflow's ID and Web UI link into
// status. Everything else — resolving packages, acting on the host, schedulability, the rest of
// status — is the workflow's.
package machine
