package machine

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Package is one component the Machine's spec asks for, resolved from its MachinePackageVersion.
type Package struct {
	Name      string
	Version   string
	DependsOn []string
}

// Installed is one component the host reports, with the dependencies it was installed with (the
// agent records them, so a removal can be ordered even after the spec forgot the package).
type Installed struct {
	Name      string
	Version   string
	DependsOn []string
}

// Action is what a step does to one component.
type Action string

const (
	ActionInstall Action = "Install"
	ActionUpgrade Action = "Upgrade" // also a downgrade: a version change either way
	ActionRemove  Action = "Remove"
)

// Step changes one component on the host.
type Step struct {
	Action Action
	Name   string
	From   string // installed version, empty for Install
	To     string // wanted version, empty for Remove
}

func (s Step) String() string {
	switch s.Action {
	case ActionInstall:
		return fmt.Sprintf("install %s %s", s.Name, s.To)
	case ActionRemove:
		return fmt.Sprintf("remove %s %s", s.Name, s.From)
	default:
		return fmt.Sprintf("upgrade %s %s -> %s", s.Name, s.From, s.To)
	}
}

// PlanError is a spec that cannot be planned: it will not get better by retrying.
type PlanError struct{ Reason string }

func (e *PlanError) Error() string { return e.Reason }

// Plan returns the steps that take the host from installed to desired:
//  1. removals first, dependents before what they depend on (a runtime outlives the kubelet using it);
//  2. then installs and upgrades, dependencies before dependents.
//
// Components already at the wanted version produce no step. Ties are broken by name so the plan is
// the same on every replay. A dependency that is neither wanted nor kept, a duplicate or a cycle is a
// PlanError naming the packages.
func Plan(desired []Package, installed []Installed) ([]Step, error) {
	want := map[string]Package{}
	for _, p := range desired {
		if _, dup := want[p.Name]; dup {
			return nil, &PlanError{Reason: fmt.Sprintf("package %s is listed twice", p.Name)}
		}
		want[p.Name] = p
	}
	have := map[string]Installed{}
	for _, p := range installed {
		have[p.Name] = p
	}
	for _, name := range sortedKeys(want) {
		for _, dep := range want[name].DependsOn {
			if _, ok := want[dep]; !ok {
				return nil, &PlanError{Reason: fmt.Sprintf("package %s depends on %s, which the machine does not list", name, dep)}
			}
		}
	}

	// Removals: installed packages no longer wanted, dependents first.
	removeDeps := map[string][]string{}
	for _, name := range sortedKeys(have) {
		if _, keep := want[name]; !keep {
			removeDeps[name] = have[name].DependsOn
		}
	}
	removeOrder, err := topoOrder(removeDeps)
	if err != nil {
		return nil, err
	}
	var steps []Step
	for _, name := range slices.Backward(removeOrder) {
		steps = append(steps, Step{Action: ActionRemove, Name: name, From: have[name].Version})
	}

	// Installs and upgrades: dependencies first.
	wantDeps := map[string][]string{}
	for _, name := range sortedKeys(want) {
		wantDeps[name] = want[name].DependsOn
	}
	order, err := topoOrder(wantDeps)
	if err != nil {
		return nil, err
	}
	for _, name := range order {
		p, cur := want[name], have[name]
		switch {
		case cur.Version == "":
			steps = append(steps, Step{Action: ActionInstall, Name: name, To: p.Version})
		case cur.Version != p.Version:
			steps = append(steps, Step{Action: ActionUpgrade, Name: name, From: cur.Version, To: p.Version})
		}
	}
	return steps, nil
}

// topoOrder orders the keys of deps so that every name comes after the names it depends on.
// Dependencies outside deps are ignored (already checked, or left in place). Among names whose
// dependencies are met, the alphabetically first goes first.
func topoOrder(deps map[string][]string) ([]string, error) {
	indegree := map[string]int{}
	dependents := map[string][]string{}
	for _, name := range sortedKeys(deps) {
		indegree[name] += 0
		for _, d := range deps[name] {
			if _, ok := deps[d]; !ok || d == name {
				if d == name {
					return nil, &PlanError{Reason: fmt.Sprintf("package %s depends on itself", name)}
				}
				continue
			}
			indegree[name]++
			dependents[d] = append(dependents[d], name)
		}
	}
	var ready, out []string
	for _, name := range sortedKeys(indegree) {
		if indegree[name] == 0 {
			ready = append(ready, name)
		}
	}
	for len(ready) > 0 {
		sort.Strings(ready)
		name := ready[0]
		ready = ready[1:]
		out = append(out, name)
		for _, d := range dependents[name] {
			if indegree[d]--; indegree[d] == 0 {
				ready = append(ready, d)
			}
		}
	}
	if len(out) != len(deps) {
		var stuck []string
		for _, name := range sortedKeys(indegree) {
			if indegree[name] > 0 {
				stuck = append(stuck, name)
			}
		}
		return nil, &PlanError{Reason: "dependency cycle among packages " + strings.Join(stuck, ", ")}
	}
	return out, nil
}

// sortedKeys is the one place workflow code ranges over a map: the keys are sorted before anyone
// uses them, so the order never depends on Go's map iteration (workflowcheck cannot see that).
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	//workflowcheck:ignore
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
