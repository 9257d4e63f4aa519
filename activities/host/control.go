package host

import (
	"context"
	"fmt"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"
)

// ControlService starts, stops or restarts an installed package's service: what a repair flow
// does to a component that misbehaves without having crashed. Start and Stop check first and
// do nothing when the service is already so. A stopped service stays stopped only until the
// agent's next local round (RunLocalLoop, about 90 s) starts it again: stopping is a step
// inside an operation, never a state of its own.
func (a *Activities) ControlService(ctx context.Context, p hostapi.ControlServiceParams) (hostapi.ControlServiceResult, error) {
	release, err := a.acquire(ctx)
	if err != nil {
		return hostapi.ControlServiceResult{}, err
	}
	defer release()
	st, err := a.loadState()
	if err != nil {
		return hostapi.ControlServiceResult{}, err
	}
	rec := st.Packages[p.Package]
	if rec == nil {
		return hostapi.ControlServiceResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("package %s is not installed on host %s", p.Package, a.Host), hostapi.ErrTypeNotInstalled, nil)
	}
	if rec.Spec.Service == nil {
		return hostapi.ControlServiceResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("package %s %s has no service to %s", p.Package, rec.Spec.Version, p.Action), hostapi.ErrTypeBadSpec, nil)
	}
	sm, err := a.services()
	if err != nil {
		return hostapi.ControlServiceResult{}, err
	}
	name := rec.Spec.Service.Name
	running := sm.Status(name).Running
	switch p.Action {
	case hostapi.ServiceStart:
		if running {
			return hostapi.ControlServiceResult{Running: true}, nil
		}
	case hostapi.ServiceStop:
		if !running {
			return hostapi.ControlServiceResult{}, nil
		}
		if err := sm.Stop(name); err != nil {
			return hostapi.ControlServiceResult{}, fmt.Errorf("stop service %s: %w", name, err)
		}
		a.journal(p.Package, rec.Spec.Version, "service-stopped", "")
		return hostapi.ControlServiceResult{Changed: true}, nil
	case hostapi.ServiceRestart:
	default:
		return hostapi.ControlServiceResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("unknown service action %q: want Start, Stop or Restart", p.Action), hostapi.ErrTypeBadSpec, nil)
	}
	if err := a.startService(ctx, rec.Spec); err != nil {
		return hostapi.ControlServiceResult{}, fmt.Errorf("%s service %s: %w", p.Action, name, err)
	}
	a.journal(p.Package, rec.Spec.Version, "service-"+string(p.Action), "")
	return hostapi.ControlServiceResult{Changed: true, Running: true}, nil
}
