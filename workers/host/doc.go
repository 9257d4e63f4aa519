// Package host registers what kok-agent's worker runs on its kok-host-<host> queue: every host
// activity of activities/host, each under its wire name from contract/hostapi.
package host
