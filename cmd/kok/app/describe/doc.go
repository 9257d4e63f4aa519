// Package describe holds the `kok describe` verb. It only assembles: each kind's package
// (machines, clusters, ...) supplies its own `kok describe <resource>` subcommand.
package describe
