package controlplane

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
)

// WatchParams asks WatchControlPlane to check the masters every Interval until what it sees
// differs from Last, or For has passed.
type WatchParams struct {
	CheckParams
	// Interval is the time between two checks (spec.health.checkInterval).
	Interval time.Duration
	// For bounds the watch: after it the activity returns with Changed false, so the workflow
	// reads the Cluster again (an edit the watcher's signal missed is seen within For).
	For time.Duration
	// Last is the verdict the workflow holds; only a different one is news.
	Last CheckResult
	// Confirm is how many checks in a row must agree on a different verdict before it is
	// returned (at least 1): a master restarting, or one lost probe, is not news.
	Confirm int
}

// WatchResult is the last check, and whether its verdict differs from the one asked about.
type WatchResult struct {
	CheckResult
	Changed bool
	// Checks is how many checks this watch made (across retries of the activity).
	Checks int
}

// WatchProgress is what WatchControlPlane heartbeats: a retried attempt (a manager restart)
// resumes the same streak and the same deadline instead of starting over.
type WatchProgress struct {
	Started time.Time
	Checks  int
	Streak  Streak
}

// Streak counts the checks in a row that saw the same verdict, Key, other than the last one.
type Streak struct {
	Key string
	N   int
}

// Observe adds one check's verdict (seen) to the streak and says whether the verdict has
// changed from last, confirmed by confirm checks in a row. A check that sees last again ends
// the streak: a fault that went away by itself within the confirmation is no news.
func Observe(last string, confirm int, st Streak, seen string) (Streak, bool) {
	if seen == last {
		return Streak{}, false
	}
	if st.Key == seen {
		st.N++
	} else {
		st = Streak{Key: seen, N: 1}
	}
	return st, st.N >= max(confirm, 1)
}

// Key reduces a check to what decisions depend on: per master, ready, not ready (it answered
// and said so) or no answer. The texts are left out: an error message that changes between
// two checks is not news.
func (r CheckResult) Key() string {
	var b strings.Builder
	for _, m := range r.Masters {
		b.WriteString(m.Host)
		switch {
		case m.Ready:
			b.WriteString("=ready;")
		case m.NoAnswer:
			b.WriteString("=noanswer;")
		default:
			b.WriteString("=unready;")
		}
	}
	return b.String()
}

// WatchControlPlane checks every master's kube-apiserver each p.Interval, inside one activity,
// and returns only when the verdict differs from p.Last for p.Confirm checks in a row, or when
// p.For has passed. A healthy cluster at rest thus costs its workflow one activity every few
// hours instead of a pass per interval. It heartbeats after every check (so a manager that
// dies is noticed, and a cancel from the workflow is seen) with the streak so far.
func (a *Activities) WatchControlPlane(ctx context.Context, p WatchParams) (WatchResult, error) {
	if p.Interval <= 0 {
		return WatchResult{}, errors.New("watch: the interval must be positive")
	}
	prog := WatchProgress{Started: time.Now()}
	if activity.HasHeartbeatDetails(ctx) {
		var saved WatchProgress
		if activity.GetHeartbeatDetails(ctx, &saved) == nil && !saved.Started.IsZero() {
			prog = saved
		}
	}
	base, err := a.adminConfig(ctx, p.Cluster)
	if err != nil {
		return WatchResult{}, err
	}
	last := p.Last.Key()
	for {
		res := a.checkAll(ctx, base, p.CheckParams)
		prog.Checks++
		var changed bool
		prog.Streak, changed = Observe(last, p.Confirm, prog.Streak, res.Key())
		if changed || time.Since(prog.Started) >= p.For {
			return WatchResult{CheckResult: res, Changed: changed, Checks: prog.Checks}, nil
		}
		activity.RecordHeartbeat(ctx, prog)
		select {
		case <-ctx.Done():
			return WatchResult{}, ctx.Err()
		case <-time.After(p.Interval):
		}
	}
}
