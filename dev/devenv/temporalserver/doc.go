// Package temporalserver runs a Temporal server and its Web UI inside the calling process for
// the local system: one sqlite file holds every workflow so they survive restarts, the
// namespaces kok needs are registered on start, and the server's logs go to a file instead of
// the user's terminal.
package temporalserver
