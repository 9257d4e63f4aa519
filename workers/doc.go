// Package workers names kok's Temporal task queues. Its subpackages say which workflows and
// activities each kind of worker registers: control (kok-manager) and host (kok-agent). They are
// separate packages so that kok-agent's import graph never reaches client-go or the Temporal server.
package workers
