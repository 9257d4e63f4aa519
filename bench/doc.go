// Package bench holds kok's benchmarks: speed and memory goals are measured here, on the real
// parts (API server, Temporal, manager and agent processes), never asserted in timed unit tests.
// `make bench` runs them once each and writes their figures to bench/results/<name>.json.
package bench
