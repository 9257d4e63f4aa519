// Package control registers what kok-manager's workers run: every workflow (on each control
// shard queue and the legacy kok-control), and the control activities under their explicit wire
// names (on kok-cluster-<name>). It only registers; sizing and queues are the manager's.
package control
