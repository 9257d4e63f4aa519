package clusters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/kubeflags"
	"kok.dev/cmd/kok/app/render"
)

// progress reads a Cluster's status, one observation at a time, as the Cluster workflow carries
// out an edit of spec.packageVersion. It reads only the status the workflow writes, never
// Temporal, and decides from what the status can prove about this edit: a status written
// before kok took the edit up must not pass for its outcome.
type progress struct {
	// want is the ClusterPackageVersion the edit asked for.
	want string
	// generation is the Cluster's metadata.generation after the edit.
	generation int64
	// baseline is the status as it was right after the edit, and baseConds its conditions'
	// reasons and messages by type.
	baseline  snapshot
	baseConds map[string]string
	// current: the status already described the edit's generation when following began (the
	// spec asked for want before the command ran), so what it says is about this edit.
	current bool
	// acted is set once the status shows that kok has read the edit.
	acted bool
	// moved is set once an operation towards want has shown in the status.
	moved bool
	// printed is the last state printed.
	printed *string
}

// snapshot is what tells a status written after an edit from the one the edit found: the
// phase, the operation and the Ready condition.
type snapshot struct {
	phase                       kokv1.ClusterPhase
	opType                      kokv1.ClusterOperationType
	opStep                      string
	ready, reason, readyMessage string
	readyTransition             time.Time
}

func snapshotOf(c *kokv1.Cluster) snapshot {
	s := snapshot{phase: c.Status.Phase}
	if op := c.Status.Operation; op != nil {
		s.opType, s.opStep = op.Type, op.Step
	}
	if r := meta.FindStatusCondition(c.Status.Conditions, kokv1.ConditionReady); r != nil {
		s.ready, s.reason, s.readyMessage, s.readyTransition = string(r.Status), r.Reason, r.Message, r.LastTransitionTime.Time
	}
	return s
}

// newProgress follows the edit that left c (as the update returned it) asking for want.
func newProgress(c *kokv1.Cluster, want string) *progress {
	p := &progress{want: want, generation: c.Generation, baseline: snapshotOf(c), baseConds: map[string]string{},
		current: c.Status.ObservedGeneration >= c.Generation}
	for _, cond := range c.Status.Conditions {
		p.baseConds[cond.Type] = conditionText(cond)
	}
	return p
}

func conditionText(c metav1.Condition) string { return c.Reason + ": " + c.Message }

// observation is what one look at the Cluster says.
type observation struct {
	// line, when not empty, is a change of phase or operation step to print.
	line string
	// done: the Cluster runs the version asked for, and its status describes the edit.
	done bool
	// err: the change failed, or the Cluster settled without it.
	err error
}

// observe reads one state of c.
func (p *progress) observe(c *kokv1.Cluster) observation {
	st := &c.Status
	// The status's observedGeneration (and its conditions') says kok has read the edit; an
	// operation's target says it is carrying the edit out; any change since the edit says
	// the workflow wrote after it.
	p.moved = p.moved || st.TargetPackageVersion == p.want
	p.acted = p.acted || p.moved || st.ObservedGeneration >= p.generation || snapshotOf(c) != p.baseline
	for _, cond := range st.Conditions {
		p.acted = p.acted || cond.ObservedGeneration >= p.generation
	}

	var o observation
	if line := progressLine(c); p.printed == nil || *p.printed != line {
		o.line, p.printed = line, &line
	}
	switch {
	case c.DeletionTimestamp != nil:
		o.err = fmt.Errorf("cluster %q is being deleted", c.Name)
	case !p.acted:
		// Whatever the status says, it says it about the spec before the edit.
	case st.Phase == kokv1.ClusterFailed:
		o.err = fmt.Errorf("cluster %q is Failed: %s; kok describe cluster %s shows its conditions, events and workflow", c.Name, statusMessage(c), c.Name)
	case st.Phase == kokv1.ClusterWaitingForHuman:
		o.err = fmt.Errorf("cluster %q is WaitingForHuman: %s; kok waits for you to act: kok describe cluster %s shows what happened and the workflow to signal", c.Name, statusMessage(c), c.Name)
	case st.Phase != kokv1.ClusterRunning || inFlight(c):
	case st.CurrentPackageVersion == p.want:
		o.done = st.ObservedGeneration >= p.generation
	case p.moved || p.refused(c):
		// The operation ended at another version: an upgrade that failed its health checks
		// was rolled back, or the edit was refused. The Ready condition says which.
		o.err = fmt.Errorf("cluster %q settled Running at %s, not %s: %s", c.Name, render.Cell(st.CurrentPackageVersion, render.None), p.want, statusMessage(c))
	}
	return o
}

// refused says a condition written for the edit tells that the cluster will not move to want
// (it was rolled back from it, or it is too far from the running version) although no
// operation towards it showed: it may have come and gone between two looks. A condition the
// edit found unchanged is about an earlier edit, unless the status already described this one.
func (p *progress) refused(c *kokv1.Cluster) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Reason != kokv1.ReasonRolledBack && cond.Reason != kokv1.ReasonUnsupportedVersionSkew {
			continue
		}
		if cond.ObservedGeneration >= p.generation && (p.current || p.baseConds[cond.Type] != conditionText(cond)) {
			return true
		}
	}
	return false
}

// inFlight says an operation is under way, though the phase may already read Running.
func inFlight(c *kokv1.Cluster) bool {
	st := &c.Status
	return st.Operation != nil || (st.TargetPackageVersion != "" && st.TargetPackageVersion != st.CurrentPackageVersion)
}

// progressLine is one line for the state of c: its phase, and the operation's step or, when
// none is under way, the version it runs.
func progressLine(c *kokv1.Cluster) string {
	st := &c.Status
	line := render.Cell(string(st.Phase), "no phase yet")
	if op := st.Operation; op != nil {
		line += ": " + string(op.Type)
		if op.Step != "" {
			line += fmt.Sprintf(" step %q", render.Cell(op.Step, ""))
		}
		if op.CanaryHost != "" {
			line += " (canary " + op.CanaryHost + ")"
		}
		if op.Message != "" {
			line += ": " + render.Cell(op.Message, "")
		}
		return line
	}
	if st.CurrentPackageVersion != "" {
		line += " at " + st.CurrentPackageVersion
	}
	return line
}

// statusMessage is what the status says about the outcome: the Ready condition's reason and
// message, else the operation's message.
func statusMessage(c *kokv1.Cluster) string {
	if r := meta.FindStatusCondition(c.Status.Conditions, kokv1.ConditionReady); r != nil && (r.Reason != "" || r.Message != "") {
		if r.Message == "" {
			return r.Reason
		}
		return render.Cell(r.Reason+": "+r.Message, "")
	}
	if op := c.Status.Operation; op != nil && op.Message != "" {
		return render.Cell(op.Message, "")
	}
	return "no message reported (no Ready condition)"
}

// requestTimeout bounds one read of the Cluster, so that a connection that hangs is retried
// rather than waited on until --timeout.
const requestTimeout = 30 * time.Second

// follow polls Cluster name every interval and prints each change of phase, step or step
// message to out, until p says the change is done or failed, ctx ends, or timeout passes.
// Errors reading the Cluster are retried, since a long upgrade outlives a blip of the API
// server, but the last one is reported if time runs out.
func follow(ctx context.Context, out io.Writer, cluster *kubeflags.Cluster, name string, p *progress, interval, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	state, lastErr := "not read yet", error(nil)
	for {
		var c kokv1.Cluster
		getCtx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := cluster.Client.Get(getCtx, types.NamespacedName{Name: name}, &c)
		cancel()
		switch {
		case apierrors.IsNotFound(err):
			return fmt.Errorf("cluster %q was deleted while kok followed its change to %s", name, p.want)
		case err != nil:
			lastErr = cluster.Explain(err, "get cluster "+name)
		default:
			lastErr, state = nil, progressLine(&c)
			o := p.observe(&c)
			if o.line != "" {
				fmt.Fprintln(out, o.line)
			}
			if o.err != nil {
				return o.err
			}
			if o.done {
				fmt.Fprintf(out, "cluster %s runs %s\n", name, p.want)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following cluster %q (%w); its change to %s carries on: kok describe cluster %s shows it", name, ctx.Err(), p.want, name)
		case <-deadline.C:
			msg := fmt.Sprintf("timed out after %s waiting for cluster %q to run %s: it is %s", timeout, name, p.want, state)
			if lastErr != nil {
				msg += fmt.Sprintf(" (last read failed: %v)", lastErr)
			}
			return errors.New(msg + "; the change carries on: kok describe cluster " + name + " shows it, or run again with a longer --timeout")
		case <-tick.C:
		}
	}
}
