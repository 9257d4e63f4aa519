// Package machines holds `kok get machines`, `kok describe machine` and `kok machine retry`: the operator's view of
// Machines as the Machine workflow reports them (phase, components, readiness gates, conditions,
// events and the workflow's Web UI link). Rendering is plain functions of the objects and the
// current time, so the output is tested as text.
package machines
