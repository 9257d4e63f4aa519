// Package app assembles kok-agent: the supervisor of the host's services, the local loop that
// keeps the host at the specs it last applied (host.RunLocalLoop, no Temporal traffic), a
// Temporal worker on the kok-host-<host> queue running the host activities, and a small HTTP
// endpoint for /metrics and /healthz. The agent talks only to Temporal (outbound); it never
// lists or watches Kubernetes, and it must not link the Temporal server or client-go (the
// lint's depguard rules and a test check its import graph).
package app
