// Package kit holds what every workflow family repeats: draining signals, spreading timers,
// backing off, and naming an activity's failure in words a person can act on.
//
// Everything here is deterministic workflow code (no I/O, no wall clock, no global state), so
// any workflow may call it; workflowcheck runs over it with the families.
package kit
