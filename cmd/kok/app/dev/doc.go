// Package dev is the `kok dev` command: `up` runs the whole local system in the foreground and
// `status` checks each of its parts. The work is done by package devenv; this package turns
// flags into its Config and its results into terminal output.
package dev
