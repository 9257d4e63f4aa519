// Package kubeflags holds what every `kok` verb that reads Kubernetes objects shares: the
// --kubeconfig and --context flags, the client they lead to (its scheme knows core and kok
// types), errors that tell the user which file, context and server were used, and the verb
// command (`kok get`, `kok describe`) that resource packages plug their subcommands into.
package kubeflags
