package host

import (
	"go.temporal.io/sdk/worker"

	"kok.dev/activities/host"
)

// Register adds every host activity to r.
func Register(r worker.Registry, a *host.Activities) {
	r.RegisterActivity(a)
}
