// Package catalogue builds the simulated node packages: it compiles kok-sim-kubelet and
// kok-sim-node, packs one tar.gz artifact per package version (two versions of each, so upgrades
// and rollbacks have somewhere to go), and describes them as MachinePackageVersions with their
// real SHA-256 digests. `make node-packages` writes them to bin/packages with a catalogue.yaml.
//
// Artifacts are reproducible (fixed timestamps, owners and order), so the same binaries always
// give the same digests, and an unchanged artifact is not packed again.
package catalogue
