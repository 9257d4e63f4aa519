package kok

// Activity names: wire API. Workflows started by older releases schedule these names, so a
// renamed method keeps its name here, and workers/control registers every exported method of
// Activities under one of them.
const (
	ActivityEnsureControlPlane      = "EnsureControlPlane"
	ActivityDeleteControlPlane      = "DeleteControlPlane"
	ActivityControlPlaneStatus      = "ControlPlaneStatus"
	ActivityWatchControlPlaneStatus = "WatchControlPlaneStatus"
)
