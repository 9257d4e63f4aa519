// Package simnode holds the programs of simulated hosts' node packages (container runtime,
// kubelet, log collector, node-problem-detector) and the catalogue that ships them as
// MachinePackageVersions. They are not part of kok-agent: the agent installs and supervises
// them like any other package, and only the simulated kubelet talks to the Kubernetes API.
package simnode
