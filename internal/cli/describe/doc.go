// Package describe holds the `kok describe` verb. It only assembles: each kind's package
// (machines, ...) supplies its own `kok describe <resource>` subcommand.
package describe
