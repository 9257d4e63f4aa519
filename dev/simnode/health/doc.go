// Package health serves a simulated node program's /healthz and /version over a unix socket
// under the host root (so several simulated hosts on one machine never fight over ports), and
// probes it: the programs' "probe" subcommand is what their packages' exec health checks run.
package health
