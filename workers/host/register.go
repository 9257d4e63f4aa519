package host

import (
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/worker"

	"kok.dev/activities/host"
	"kok.dev/contract/hostapi"
)

// Register adds every host activity to r under its wire name from hostapi. The names are
// registered one by one, not taken from the Go methods, so that renaming a method cannot
// change what workflows (and agents of other releases) call on the wire.
func Register(r worker.Registry, a *host.Activities) {
	for name, fn := range activities(a) {
		r.RegisterActivityWithOptions(fn, activity.RegisterOptions{Name: name})
	}
}

// activities maps each wire name to the method serving it. A test checks that every exported
// method of host.Activities is here.
func activities(a *host.Activities) map[string]any {
	return map[string]any{
		hostapi.ActivityFacts:          a.Facts,
		hostapi.ActivityEnsurePackage:  a.EnsurePackage,
		hostapi.ActivityRemovePackage:  a.RemovePackage,
		hostapi.ActivityCheckHealth:    a.CheckHealth,
		hostapi.ActivityControlService: a.ControlService,
		hostapi.ActivityReboot:         a.Reboot,
		hostapi.ActivityInspectHost:    a.InspectHost,
	}
}
