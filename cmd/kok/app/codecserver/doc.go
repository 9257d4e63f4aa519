// Package codecserver holds the `kok codec-server` command, which serves the Temporal
// codec-server protocol so that the Web UI and the Temporal CLI can show encrypted payloads in
// clear to the people who can reach it, and the `kok codec-key` command that creates and rotates
// the key file every kok process shares.
package codecserver
