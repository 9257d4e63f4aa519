// Package machine is the Machine watcher: when something the Machine workflow reads changes — the
// Machine's spec, its retry annotation or deletion, the Data of a Condition ConfigMap of its node,
// a MachinePackageVersion it names, its Node's registration — it signal-with-starts the workflow
// with a digest of those inputs, and writes the workflow's ID and Web UI link into status. A
// Machine whose digest equals status.observedInputs (what the workflow has acted on) is not
// signalled, so a restarted watcher over unchanged Machines sends nothing. Everything else —
// resolving packages, acting on the host, schedulability, the rest of status — is the workflow's.
package machine
