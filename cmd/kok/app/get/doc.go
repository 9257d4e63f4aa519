// Package get holds the `kok get` verb. It only assembles: each kind's package (machines, clusters,
// ...) supplies its own `kok get <resource>` subcommand, so kinds are added without touching the
// others.
package get
