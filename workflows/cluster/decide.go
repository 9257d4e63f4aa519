package cluster

import (
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/util/version"
)

// Operation is what the Cluster workflow must do to bring the real cluster to its spec.
type Operation string

const (
	OpNone     Operation = "None"
	OpCreate   Operation = "Create"
	OpUpgrade  Operation = "Upgrade"
	OpRollback Operation = "Rollback"
	OpDelete   Operation = "Delete"
)

// Observed is what the workflow knows of the cluster when it decides.
type Observed struct {
	// Created: the control plane has been created once (PKI, etcd, apiservers running).
	Created bool
	// Deleting: the Cluster object carries a deletion timestamp.
	Deleting bool
	// CurrentVersion is the Kubernetes version the masters run ("" before create);
	// TargetVersion the one spec.packageVersion names.
	CurrentVersion string
	TargetVersion  string
}

// Decision is the operation with the reason to refuse it, if any.
type Decision struct {
	Op Operation
	// Refused explains why the edit cannot be carried out (the workflow reports it and waits for
	// another edit); empty when Op may go ahead.
	Refused string
}

// DecideOperation maps an edit onto an operation. Upgrades move up at most one minor version
// (Kubernetes' supported skew); a rollback moves back at most one minor version — the step other
// systems refuse, which kok supports because every release is an immutable package version.
func DecideOperation(o Observed) Decision {
	switch {
	case o.Deleting:
		return Decision{Op: OpDelete}
	case !o.Created:
		return Decision{Op: OpCreate}
	case o.CurrentVersion == o.TargetVersion:
		return Decision{Op: OpNone}
	}
	cur, err := version.ParseSemantic(o.CurrentVersion)
	if err != nil {
		return Decision{Op: OpNone, Refused: fmt.Sprintf("current version %q is not a Kubernetes version: %v", o.CurrentVersion, err)}
	}
	tgt, err := version.ParseSemantic(o.TargetVersion)
	if err != nil {
		return Decision{Op: OpNone, Refused: fmt.Sprintf("target version %q is not a Kubernetes version: %v", o.TargetVersion, err)}
	}
	if cur.Major() != tgt.Major() {
		return Decision{Op: OpNone, Refused: fmt.Sprintf("cannot change major version %s -> %s", o.CurrentVersion, o.TargetVersion)}
	}
	minorDelta := int(tgt.Minor()) - int(cur.Minor())
	switch {
	case minorDelta > 1:
		return Decision{Op: OpNone, Refused: fmt.Sprintf("%s -> %s skips a minor version: upgrade one minor version at a time", o.CurrentVersion, o.TargetVersion)}
	case minorDelta < -1:
		return Decision{Op: OpNone, Refused: fmt.Sprintf("%s -> %s rolls back more than one minor version", o.CurrentVersion, o.TargetVersion)}
	case tgt.LessThan(cur):
		return Decision{Op: OpRollback}
	default:
		return Decision{Op: OpUpgrade}
	}
}

// Move is what the entity decides on in every pass, for either provider: what runs, and what
// the spec asks for.
type Move struct {
	Created bool
	// Current and Target are package version names; CurrentKube and TargetKube their Kubernetes
	// versions (CurrentKube is empty when the running release's catalogue entry is gone).
	Current, CurrentKube string
	Target, TargetKube   string
	// FailedHere: moving to Target failed and was undone at this generation of the spec, so it
	// is not tried again until the spec changes.
	FailedHere bool
}

// DecideNext chooses the operation of a pass, for provider process and provider kok alike:
// create what was never created; move to the target when it differs from what runs and has
// not already failed at this generation (an upgrade or a rollback within the supported skew,
// else refused); otherwise none, and the pass checks health. The providers differ only in the
// child workflow and the activities that carry the operation out.
func DecideNext(m Move) Decision {
	switch {
	case !m.Created:
		return Decision{Op: OpCreate}
	case m.Current == m.Target || m.FailedHere:
		return Decision{Op: OpNone}
	case m.CurrentKube == "":
		// The names still say what runs; moving away from it needs no more than that.
		return Decision{Op: OpUpgrade}
	}
	d := DecideOperation(Observed{Created: true, CurrentVersion: m.CurrentKube, TargetVersion: m.TargetKube})
	if d.Refused == "" && d.Op == OpNone {
		// Same Kubernetes version, another package version (a rebuilt component): an upgrade
		// moves every component that differs.
		d.Op = OpUpgrade
	}
	return d
}

// Component names, in the order an upgrade changes them on one master.
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	MachineOperator       = "machine-operator"
)

// ComponentStep changes one component on one master.
type ComponentStep struct {
	Component string
	From, To  string
	// Skip says why the step is not taken (the component stays at From).
	Skip string
}

// ComponentOrder returns the steps for one master. An upgrade goes etcd, apiserver,
// controller-manager, scheduler, machine operator: nothing may be newer than the apiserver it
// talks to. A rollback goes the other way round for the same reason. etcd is never downgraded:
// its data directory, once written by a newer minor, is not readable by an older binary without
// etcd's own downgrade protocol, and every Kubernetes release in the supported skew works with
// the newer etcd; the step says so instead of being silently dropped.
func ComponentOrder(op Operation, from, to map[string]string) ([]ComponentStep, error) {
	order := []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler, MachineOperator}
	if op == OpRollback {
		order = []string{MachineOperator, KubeScheduler, KubeControllerManager, KubeAPIServer, Etcd}
	}
	var steps []ComponentStep
	for _, c := range order {
		f, t := from[c], to[c]
		if t == "" {
			if c == MachineOperator {
				continue
			}
			return nil, fmt.Errorf("target release has no %s", c)
		}
		if f == t {
			continue
		}
		step := ComponentStep{Component: c, From: f, To: t}
		if c == Etcd && f != "" && op == OpRollback {
			if older, err := isOlder(t, f); err != nil {
				return nil, fmt.Errorf("etcd versions: %w", err)
			} else if older {
				step.Skip = fmt.Sprintf("etcd stays at %s: data written by etcd %s cannot be read by %s after a restart, and the target release works with the newer etcd", f, f, t)
			}
		}
		steps = append(steps, step)
	}
	return steps, nil
}

func isOlder(a, b string) (bool, error) {
	va, err := version.ParseGeneric(a)
	if err != nil {
		return false, err
	}
	vb, err := version.ParseGeneric(b)
	if err != nil {
		return false, err
	}
	return va.LessThan(vb), nil
}

// MasterHealth is one master as the last health check saw it.
type MasterHealth struct {
	Host    string
	Healthy bool
	// Why says what failed (readyz, etcd member health, a component down).
	Why string
}

// UpgradeOrder picks the canary and the order of the other masters. Every master must be healthy
// before a change starts — a change never begins on top of a fault; the refusal names them. The
// canary is the first host by name, so a retried operation picks the same one.
func UpgradeOrder(masters []MasterHealth) (order []string, refused string) {
	var sick []string
	for _, m := range masters {
		if !m.Healthy {
			sick = append(sick, fmt.Sprintf("%s (%s)", m.Host, m.Why))
		} else {
			order = append(order, m.Host)
		}
	}
	if len(sick) > 0 {
		sort.Strings(sick)
		return nil, fmt.Sprintf("masters are unhealthy, heal them first: %v", sick)
	}
	sort.Strings(order)
	return order, ""
}

// HealDecision says whether kok recovers a master by itself or waits for a human.
type HealDecision struct {
	Recover bool
	// Escalate: the recovery limit is reached; the workflow waits (WaitingForHuman) for a
	// resolve signal. Reason says why, for status.
	Escalate bool
	Reason   string
}

// DecideHeal allows at most maxRecoveries automatic recoveries within window (counting the
// recoveries already made at the times given); past that a human decides, because a master
// that keeps failing after restarts has a cause a restart will not fix.
func DecideHeal(now time.Time, recoveries []time.Time, maxRecoveries int, window time.Duration) HealDecision {
	recent := len(RecoveriesWithin(now, recoveries, window))
	if recent >= maxRecoveries {
		return HealDecision{Escalate: true, Reason: fmt.Sprintf("%d automatic recoveries in the last %s (limit %d): waiting for a human to resolve", recent, window, maxRecoveries)}
	}
	return HealDecision{Recover: true, Reason: fmt.Sprintf("automatic recovery %d of %d in %s", recent+1, maxRecoveries, window)}
}
