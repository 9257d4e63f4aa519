// Package fleet runs many simulated hosts in one process, so that one small machine can hold
// thousands of nodes for kok's scale benchmarks (bench/fleet_test.go, cmd/kok-sim-fleet).
//
// Each host is what a real kok-agent host is, minus its processes: its own root directory, a
// Temporal worker on kok-host-<host> running the real host activities (activities/host, with
// Simulate and that root, registered by workers/host.Register), and a simulated kubelet
// (dev/simnode/kubelet) that registers the host's Node and keeps it Ready. Files, host state,
// config files, the journal and artifact checksums are all real; only the package services'
// processes are simulated, by SimulatedServices, because thousands of hosts cannot each spawn
// real processes. All hosts share one Temporal client (one connection) and one REST config
// (client-go shares its transport), and each worker runs a single activity poller.
package fleet
