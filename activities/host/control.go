package host

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"
)

// ServiceAction is what ControlService does to a package's service.
type ServiceAction string

const (
	ServiceStart   ServiceAction = "Start"
	ServiceStop    ServiceAction = "Stop"
	ServiceRestart ServiceAction = "Restart"
)

// ControlServiceParams names an installed package and what to do to its service.
type ControlServiceParams struct {
	Package string
	Action  ServiceAction
}

// ControlServiceResult says whether anything changed and whether the service runs now.
type ControlServiceResult struct {
	Changed bool
	Running bool
}

// ControlService starts, stops or restarts an installed package's service: what a repair flow
// does to a component that misbehaves without having crashed. Start and Stop check first and
// do nothing when the service is already so. A stopped service stays stopped only until the
// Machine's next drift check starts it again: stopping is a step inside an operation, never a
// state of its own.
func (a *Activities) ControlService(ctx context.Context, p ControlServiceParams) (ControlServiceResult, error) {
	release, err := a.acquire(ctx)
	if err != nil {
		return ControlServiceResult{}, err
	}
	defer release()
	st, err := a.loadState()
	if err != nil {
		return ControlServiceResult{}, err
	}
	rec := st.Packages[p.Package]
	if rec == nil {
		return ControlServiceResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("package %s is not installed on host %s", p.Package, a.Host), ErrTypeNotInstalled, nil)
	}
	if rec.Spec.Service == nil {
		return ControlServiceResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("package %s %s has no service to %s", p.Package, rec.Spec.Version, p.Action), ErrTypeBadSpec, nil)
	}
	sm, err := a.services()
	if err != nil {
		return ControlServiceResult{}, err
	}
	name := rec.Spec.Service.Name
	running := sm.Status(name).Running
	switch p.Action {
	case ServiceStart:
		if running {
			return ControlServiceResult{Running: true}, nil
		}
	case ServiceStop:
		if !running {
			return ControlServiceResult{}, nil
		}
		if err := sm.Stop(name); err != nil {
			return ControlServiceResult{}, fmt.Errorf("stop service %s: %w", name, err)
		}
		a.journal(p.Package, rec.Spec.Version, "service-stopped", "")
		return ControlServiceResult{Changed: true}, nil
	case ServiceRestart:
	default:
		return ControlServiceResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("unknown service action %q: want Start, Stop or Restart", p.Action), ErrTypeBadSpec, nil)
	}
	if err := a.startService(ctx, rec.Spec); err != nil {
		return ControlServiceResult{}, fmt.Errorf("%s service %s: %w", p.Action, name, err)
	}
	a.journal(p.Package, rec.Spec.Version, "service-"+string(p.Action), "")
	return ControlServiceResult{Changed: true, Running: true}, nil
}
