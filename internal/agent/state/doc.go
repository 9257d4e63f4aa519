// Package state keeps kok-agent's record of its host on disk: a JSON file replaced atomically
// (write a temporary file, fsync, rename, fsync the directory), so a crash or a kill at any
// moment leaves either the old record or the new one, never half of either; an append-only
// journal of completed steps, for audits and for tests that prove nothing ran twice; and an
// exclusive lock on the host root, so two agents never manage one host.
package state
