// Package cli builds the `kok` command: the operator's tool for the local system (kok dev),
// kok's objects (get, describe, upgrade, rollback, ...) and the codec server. Each command
// group lives in its own subpackage; this package only assembles them.
package app
