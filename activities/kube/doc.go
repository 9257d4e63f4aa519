// Package kube holds the control activities that read and change Kubernetes objects of a
// business cluster: nodes, Machines and their status, Events. Each activity checks before it acts,
// so a retry after a lost response changes nothing twice.
package kube
