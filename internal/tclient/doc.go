// Package tclient turns command-line flags and environment variables into a Temporal client:
// address, namespace, mutual TLS and the payload-encrypting data converter. Every kok binary
// uses it, so they all accept the same flags and honour the same environment.
//
// kok-agent links this package, so it must stay free of the Temporal server and of Kubernetes
// clients.
package tclient
