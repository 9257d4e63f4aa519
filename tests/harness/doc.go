// Package harness starts the real parts an integration or end-to-end test needs: a kube-apiserver
// and etcd (envtest, with the binaries `make k8s-bins` builds from source) carrying kok's CRDs, an
// in-process Temporal server, and on request kok-manager and kok-agent as real processes.
//
// Everything a test starts is stopped by t.Cleanup, in reverse order. Missing binaries fail the
// test at once with the make target that builds them: a harness that silently skipped would let
// CI pass without ever touching a real API server.
package harness
