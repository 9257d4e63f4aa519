// Package machine is the Machine entity workflow: one per node, it drives the host to the
// Machine's spec (packages in dependency order, configs, services, system settings), keeps it there
// with a periodic drift check, and alone decides the node's schedulability from its readiness gates.
//
// The decisions are pure functions beside the workflow (plan.go: what to install, upgrade or
// remove and in which order), tested with tables.
package machine
