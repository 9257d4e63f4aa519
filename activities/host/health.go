package host

import (
	"context"
	"fmt"
	"time"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"

	"kok.dev/internal/agent/probe"
)

// Health-check defaults, as the API documents them.
const (
	defaultPeriod           = 10 * time.Second
	defaultTimeout          = 5 * time.Second
	defaultFailureThreshold = 3
)

// CheckHealth runs an installed package's health check; a package without one is healthy while
// its service runs (or, without a service, once installed). With Wait it checks every period,
// heartbeating, until a check passes or FailureThreshold checks in a row have failed. An
// unhealthy package is a result, not an error: the workflow decides what to do about it.
func (a *Activities) CheckHealth(ctx context.Context, p hostapi.CheckHealthParams) (hostapi.CheckHealthResult, error) {
	st, err := a.loadState()
	if err != nil {
		return hostapi.CheckHealthResult{}, err
	}
	rec := st.Packages[p.Name]
	if rec == nil {
		return hostapi.CheckHealthResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("package %s is not installed on host %s", p.Name, a.Host), hostapi.ErrTypeNotInstalled, nil)
	}
	ctx, stop := keepAlive(ctx)
	defer stop()
	spec := rec.Spec
	if spec.HealthCheck == nil && spec.Service == nil {
		return hostapi.CheckHealthResult{Healthy: true, Message: fmt.Sprintf("%s %s is installed", spec.Name, spec.Version)}, nil
	}
	if spec.Service != nil {
		if _, err := a.services(); err != nil {
			return hostapi.CheckHealthResult{}, err
		}
	}

	h := hostapi.ProbeSpec{}
	if spec.HealthCheck != nil {
		h = *spec.HealthCheck
	}
	period := secondsOr(h.PeriodSec, defaultPeriod)
	threshold := h.FailureThreshold
	if threshold <= 0 {
		threshold = defaultFailureThreshold
	}
	if p.Wait && h.InitialDelaySec > 0 && spec.Service != nil {
		started := a.Services.Status(spec.Service.Name).StartedAt
		if err := sleepCtx(ctx, time.Until(started.Add(time.Duration(h.InitialDelaySec)*time.Second))); err != nil {
			return hostapi.CheckHealthResult{}, err
		}
	}
	for failures := 1; ; failures++ {
		err := a.checkOnce(ctx, spec)
		if err == nil {
			msg := fmt.Sprintf("service %s is running", serviceName(spec))
			if spec.HealthCheck != nil {
				msg = "health check passed"
			}
			return hostapi.CheckHealthResult{Healthy: true, Message: msg}, nil
		}
		if !p.Wait {
			return hostapi.CheckHealthResult{Message: err.Error()}, nil
		}
		if failures >= threshold {
			return hostapi.CheckHealthResult{Message: fmt.Sprintf("%d checks in a row failed, %s apart; last: %v", failures, period, err)}, nil
		}
		heartbeat(ctx, fmt.Sprintf("check %d of %d failed: %v", failures, threshold, err))
		if err := sleepCtx(ctx, period); err != nil {
			return hostapi.CheckHealthResult{}, err
		}
	}
}

// checkOnce checks the service runs, then runs the probe.
func (a *Activities) checkOnce(ctx context.Context, spec hostapi.PackageSpec) error {
	if spec.Service != nil {
		if st := a.Services.Status(spec.Service.Name); !st.Running {
			if st.LastExit != "" {
				return fmt.Errorf("service %s is not running (last exit: %s)", spec.Service.Name, st.LastExit)
			}
			return fmt.Errorf("service %s is not running", spec.Service.Name)
		}
	}
	if spec.HealthCheck == nil {
		return nil
	}
	pkgDir := a.installerFor(spec.Installer).PackageDir(pkgOf(spec))
	ps := probeSpec(*spec.HealthCheck, a.expander(pkgDir))
	ps.Timeout = secondsOr(spec.HealthCheck.TimeoutSec, defaultTimeout)
	ps.Env = []string{"PATH=" + defaultPath, "KOK_ROOT=" + a.kokRoot(), "KOK_HOST=" + a.Host, "KOK_PACKAGE_DIR=" + pkgDir}
	return probe.Check(ctx, ps)
}

func serviceName(spec hostapi.PackageSpec) string {
	if spec.Service == nil {
		return ""
	}
	return spec.Service.Name
}

func secondsOr(sec int, def time.Duration) time.Duration {
	if sec <= 0 {
		return def
	}
	return time.Duration(sec) * time.Second
}

// sleepCtx waits d unless ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
