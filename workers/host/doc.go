// Package host registers what kok-agent's worker runs on its kok-host-<host> queue.
package host
