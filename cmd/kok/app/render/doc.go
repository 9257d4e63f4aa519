// Package render holds what the kinds' `kok get` and `kok describe` subcommands share: kubectl's
// ways of printing ages, cells, Events and objects as YAML or JSON, the describe layout with its
// Events and Workflow sections, and the read of an object's Events. Everything but ObjectEvents
// is a plain function of its arguments (time included), so each kind tests its output as text.
package render
