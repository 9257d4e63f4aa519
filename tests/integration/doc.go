// Package integration holds kok's integration suites: each test starts real parts through
// kok.dev/tests/harness (kube-apiserver and etcd built from source, Temporal in process, kok
// processes) and checks behaviour a user would see, such as the API server refusing bad objects.
// The suites need `make k8s-bins`; they have no non-test code.
package integration
