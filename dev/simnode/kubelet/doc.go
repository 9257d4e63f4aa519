// Package kubelet is the simulated kubelet of kok's simulated hosts: it registers its Node, renews
// the Node's Lease in kube-node-lease and posts the Ready condition with fresh heartbeats, as a
// kubelet does, so the control plane sees a live node while it runs and a lost one (NotReady
// after the grace period) once it stops. It runs no containers: kwok, told to manage nodes with
// the annotation kwok.x-k8s.io/node=fake, plays the container runtime for pods bound to them.
//
// It is a package of its own program, kok-sim-kubelet; kok-agent never links it (the agent does
// not talk to the Kubernetes API).
package kubelet
