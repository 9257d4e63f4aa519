// Package probe runs one health check of a package: a command that must exit 0, an HTTP GET that
// must answer an expected status, or a TCP connection that must open. A failure comes back as an
// error that says what was tried and what happened, for the Machine's status.
package probe
