package kok

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"

	"kok.dev/activities/controlplane"
)

// WatchParams asks WatchControlPlaneStatus to look at the workloads every Interval until what
// it sees differs from Last (a Status.Key), confirmed by Confirm looks in a row, or For passes.
type WatchParams struct {
	StatusParams
	Interval time.Duration
	For      time.Duration
	Last     string
	Confirm  int
}

// WatchResult is the last look, and whether its verdict differs from the one asked about.
type WatchResult struct {
	Status
	Changed bool
}

// Key reduces a status to what the Cluster workflow decides on: ready or not, and at which
// package version. The messages are left out: a rollout's counts that move are not news.
func (s Status) Key() string {
	if s.Ready {
		return "ready@" + s.PackageVersion
	}
	return "unready@" + s.PackageVersion
}

// WatchControlPlaneStatus is ControlPlaneStatus, every p.Interval inside one activity, returning
// only when the verdict changes or p.For has passed: provider kok's control plane at rest costs
// its workflow one activity every few hours. It heartbeats its progress, so a retry resumes.
func (a *Activities) WatchControlPlaneStatus(ctx context.Context, p WatchParams) (WatchResult, error) {
	if p.Interval <= 0 {
		return WatchResult{}, errors.New("watch: the interval must be positive")
	}
	prog := controlplane.WatchProgress{Started: time.Now()}
	if activity.HasHeartbeatDetails(ctx) {
		var saved controlplane.WatchProgress
		if activity.GetHeartbeatDetails(ctx, &saved) == nil && !saved.Started.IsZero() {
			prog = saved
		}
	}
	for {
		st, err := a.ControlPlaneStatus(ctx, p.StatusParams)
		if err != nil {
			return WatchResult{}, err
		}
		prog.Checks++
		var changed bool
		prog.Streak, changed = controlplane.Observe(p.Last, p.Confirm, prog.Streak, st.Key())
		if changed || time.Since(prog.Started) >= p.For {
			return WatchResult{Status: st, Changed: changed}, nil
		}
		activity.RecordHeartbeat(ctx, prog)
		select {
		case <-ctx.Done():
			return WatchResult{}, ctx.Err()
		case <-time.After(p.Interval):
		}
	}
}
