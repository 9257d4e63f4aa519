// Package pki holds the control activities that keep a business cluster's PKI in Secrets of
// the meta cluster: one namespace per cluster, one Secret per authority, certificate, signing
// key and kubeconfig. The certificates themselves come from kok.dev/internal/pki.
//
// Activity results land in Temporal history, so they carry Secret names and a CA fingerprint,
// never key material: whoever needs a certificate reads the Secret.
package pki
