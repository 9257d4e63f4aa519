package controlplane

import (
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/provider/process"
)

// Activities act on the meta cluster through Client (uncached: a workflow that just wrote
// must read its own write).
type Activities struct {
	Client client.Client
	// Operator is how the machine operators of new clusters reach Temporal; empty
	// TemporalAddress leaves the machine operator out of the control plane.
	Operator process.Operator
	// ProbeTimeout bounds one HTTP check of a master; zero means 5s.
	ProbeTimeout time.Duration
}
