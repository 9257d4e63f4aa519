// Package control registers what kok-manager's worker runs on the kok-control queue.
package control
