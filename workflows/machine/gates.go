package machine

import (
	"fmt"
	"sort"
	"strings"
)

// GateMode says how long a readiness gate holds the node.
type GateMode string

const (
	// GateContinuous gates the node for its whole life: turning False makes it unschedulable.
	GateContinuous GateMode = "Continuous"
	// GateBootstrap gates only the first time the node becomes schedulable.
	GateBootstrap GateMode = "Bootstrap"
)

// Gate is one readiness gate with the condition reported for it (Status "" = nobody reported).
type Gate struct {
	Type    string
	Mode    GateMode
	Status  string // True, False, Unknown or "" when missing
	Message string
	// Source names where the condition came from (the reporter's ConfigMap), or what is missing.
	Source string
}

// SchedulingInput is everything schedulability depends on.
type SchedulingInput struct {
	Gates []Gate
	// Bootstrapped: the node has been schedulable once, so Bootstrap gates no longer hold it.
	Bootstrapped bool
	// ComponentsHealthy: every wanted package is installed at its version and healthy.
	ComponentsHealthy bool
	// Isolations are the requesters asking for the node to be isolated (fault repair, humans).
	Isolations []string
	// Deleting: the Machine is going away; never take new pods.
	Deleting bool
}

// SchedulingDecision is the verdict with the reasons for a False, in words an operator can act on.
type SchedulingDecision struct {
	Schedulable bool
	Reasons     []string
}

// Message joins the reasons for a condition message.
func (d SchedulingDecision) Message() string {
	if d.Schedulable {
		return "every readiness gate is True, every component is healthy and no isolation is requested"
	}
	return strings.Join(d.Reasons, "; ")
}

// DecideSchedulable is the only place that decides whether a node may take new pods: every
// readiness gate that still applies is True, every component is healthy, and nobody asked for
// isolation. A gate nobody reported counts as not ready.
func DecideSchedulable(in SchedulingInput) SchedulingDecision {
	var reasons []string
	if in.Deleting {
		reasons = append(reasons, "machine is being deleted")
	}
	if len(in.Isolations) > 0 {
		iso := append([]string(nil), in.Isolations...)
		sort.Strings(iso)
		reasons = append(reasons, "isolation requested by "+strings.Join(iso, ", "))
	}
	if !in.ComponentsHealthy {
		reasons = append(reasons, "components are not all installed and healthy")
	}
	gates := append([]Gate(nil), in.Gates...)
	sort.Slice(gates, func(i, j int) bool { return gates[i].Type < gates[j].Type })
	for _, g := range gates {
		if g.Mode == GateBootstrap && in.Bootstrapped {
			continue
		}
		switch g.Status {
		case "True":
		case "":
			reasons = append(reasons, fmt.Sprintf("readiness gate %s: no condition reported (%s)", g.Type, g.Source))
		default:
			msg := fmt.Sprintf("readiness gate %s is %s", g.Type, g.Status)
			if g.Message != "" {
				msg += ": " + g.Message
			}
			reasons = append(reasons, msg)
		}
	}
	return SchedulingDecision{Schedulable: len(reasons) == 0, Reasons: reasons}
}
