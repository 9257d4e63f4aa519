// Package supervisor is kok-agent's own service manager for simulated hosts: it runs each
// package's service as a child process in its own process group, restarts it by its restart
// policy with exponential backoff, appends its output to a per-service log that is rotated when
// it grows too large, reports whether it runs, and stops everything when the agent stops.
//
// Children die with the agent even when the agent is killed (the kernel's parent-death signal),
// which is what makes a "stopped" simulated host look stopped: its sim-kubelet dies and its Node
// goes NotReady. A pid file per service lets a new agent clear out anything a previous one left.
package supervisor
