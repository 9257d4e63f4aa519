// Package fetch downloads package artifacts into a content-addressed cache and verifies their
// SHA-256 digests before anyone may use them: a file that does not match never leaves the
// temporary download, so nothing on the host changes because of it.
package fetch
