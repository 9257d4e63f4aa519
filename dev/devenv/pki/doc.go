// Package pki keeps the certificate authority and the certificates of the local meta cluster
// in a directory: created on first use, reused afterwards, and recreated only when a file is
// missing, unreadable, signed by another CA, expiring soon or no longer matching what it is for.
// Reuse is what lets a second `kok dev up` talk to the etcd data and kubeconfigs of the first.
package pki
