package kube

// Activity names: wire API. Workflows started by older releases schedule these names, so a
// renamed method keeps its name here, and workers/control registers every exported method of
// Activities under one of them.
const (
	ActivitySetNodeSchedulable  = "SetNodeSchedulable"
	ActivityReadMachine         = "ReadMachine"
	ActivityReportMachineStatus = "ReportMachineStatus"
	ActivityRecordMachineEvent  = "RecordMachineEvent"
	ActivityReleaseMachine      = "ReleaseMachine"
)
