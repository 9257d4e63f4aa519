package controlplane

// Activity names: wire API. Workflows started by older releases schedule these names, so a
// renamed method keeps its name here, and workers/control registers every exported method of
// Activities under one of them.
const (
	ActivityReadCluster         = "ReadCluster"
	ActivityRenderMaster        = "RenderMaster"
	ActivityCheckControlPlane   = "CheckControlPlane"
	ActivityInstallAddons       = "InstallAddons"
	ActivityReportClusterStatus = "ReportClusterStatus"
	ActivityRecordClusterEvent  = "RecordClusterEvent"
	ActivityReleaseCluster      = "ReleaseCluster"
	ActivityWatchControlPlane   = "WatchControlPlane"
)
