// Package machine is the Machine entity workflow: one per node, it drives the host to the
// Machine's spec (packages in dependency order, configs, services, system settings), keeps it there
// with a periodic look at the host, and alone decides the node's schedulability from its readiness
// gates.
//
// At rest it costs one InspectHost per jittered drift interval: the agent keeps the host at spec on
// its own, and the workflow acts (converge.go) only when the host's digest differs from the spec's.
// An absent agent or artifact is waited for with backoff, never remembered as a failure; status is
// written only when it changes (status.go). Runs started before that loop keep the old one
// (legacy.go) until they continue as new.
//
// The decisions are pure functions beside the workflow (plan.go: what to install, upgrade or
// remove and in which order; gates.go: schedulability; status.go: the status), tested with tables.
package machine
