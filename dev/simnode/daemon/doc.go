// Package daemon is the body of kok-sim-node: a small daemon playing one node component of a
// simulated host (container-runtime, log-collector or node-problem-detector). Each reads its
// config file, serves /healthz on a unix socket under the host root, and does a token share of
// its role's work on disk, so that installs, upgrades, config drift and health checks all act on
// something real.
package daemon
