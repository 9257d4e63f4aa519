// Package hostapi is the wire contract between kok's workflows and kok-agent: the host
// activities' names, their params and results, and the error types the workflows handle.
//
// It links nothing but the standard library, so the agent, the workflows, the fleet simulator
// and any outside caller can share it without pulling client-go or the Temporal server in
// (depguard's contract-lean rule). A field added here must be optional on both sides: agents of
// several releases serve one fleet.
package hostapi
