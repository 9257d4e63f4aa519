package host

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"

	"kok.dev/internal/agent/fetch"
	"kok.dev/internal/agent/installer"
)

// EnsurePackage makes one package installed at Spec.Version with its configs, sysctls and
// service as specified: it installs, upgrades (either direction) or repairs drift, acting only
// where the host differs, so it is safe to run any number of times. The artifact's digest is
// verified before anything changes. An install or upgrade whose service does not start is
// rolled back to the previous version, running again, and fails with ErrTypeInstallFailed.
func (a *Activities) EnsurePackage(ctx context.Context, p hostapi.EnsurePackageParams) (hostapi.EnsurePackageResult, error) {
	received := p.Spec
	spec := normalize(received)
	if err := validate(spec); err != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	if _, err := a.services(); err != nil && spec.Service != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	ctx, stop := keepAlive(ctx)
	defer stop()
	unlock, err := a.acquire(ctx)
	if err != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	defer unlock()
	st, err := a.loadState()
	if err != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	if cur := st.Packages[spec.Name]; cur != nil && cur.Spec.Version == spec.Version && cur.Spec.Installer == spec.Installer {
		res, err := a.repair(ctx, st, cur, spec, &received)
		if err == nil {
			err = a.dropPending(st, spec)
		}
		return res, err
	}
	return a.change(ctx, st, st.Packages[spec.Name], spec, &received)
}

// change installs spec where the package is absent or at another version (prev); received is
// the spec as the workflow sent it.
func (a *Activities) change(ctx context.Context, st *hostState, prev *packageRecord, spec hostapi.PackageSpec, received *hostapi.PackageSpec) (hostapi.EnsurePackageResult, error) {
	res := hostapi.EnsurePackageResult{Action: hostapi.EnsureInstalled, RebootRequired: spec.RebootRequired}
	if prev != nil {
		res.Action, res.PreviousVersion = hostapi.EnsureUpgraded, prev.Spec.Version
	}
	what := fmt.Sprintf("install %s %s", spec.Name, spec.Version)
	if prev != nil {
		what = fmt.Sprintf("change %s from %s to %s", spec.Name, prev.Spec.Version, spec.Version)
	}

	// 1. The artifact, verified, before anything changes.
	artifact, err := a.artifactFor(ctx, spec)
	if err != nil {
		return res, err
	}

	// 2. Say what is about to change, so an agent that dies half way knows. What an earlier
	// change left half done (another version) goes first: its configs are no one's now.
	if old := st.Pending[spec.Name]; old != nil && old.Spec.Version != spec.Version {
		keep := spec.ConfigFiles
		if prev != nil {
			keep = append(append([]hostapi.ConfigFile{}, keep...), prev.Spec.ConfigFiles...)
		}
		if err := a.removeConfigs(old.Spec.ConfigFiles, keep); err != nil {
			return res, err
		}
		a.journal(spec.Name, old.Spec.Version, "abandoned", "superseded by "+spec.Version)
	}
	st.Pending[spec.Name] = newRecord(spec, received)
	if err := a.saveState(st); err != nil {
		return res, err
	}

	// 3. Apply: files, configs, sysctls, service. Any failure puts the previous version back.
	if err := a.apply(ctx, prev, spec, artifact); err != nil {
		if ctx.Err() != nil {
			// Cancelled or timed out: leave it pending; the next attempt finishes the job.
			return res, fmt.Errorf("%s: %w", what, err)
		}
		return res, a.rollback(ctx, st, prev, spec, fmt.Errorf("%s: %w", what, err))
	}

	// 4. Done: record it, then tidy up.
	st.Packages[spec.Name] = newRecord(spec, received)
	delete(st.Pending, spec.Name)
	if err := a.saveState(st); err != nil {
		return res, err
	}
	a.journal(spec.Name, spec.Version, strings.ToLower(string(res.Action)), res.PreviousVersion)
	a.tidy(spec, prev)
	a.log().Info("package applied", "package", spec.Name, "version", spec.Version, "action", res.Action, "previous", res.PreviousVersion)
	return res, nil
}

// dropPending forgets a change that was under way when the agent died and that the workflow
// no longer wants (the host is at spec, another version): configs only it wrote go too.
func (a *Activities) dropPending(st *hostState, spec hostapi.PackageSpec) error {
	p := st.Pending[spec.Name]
	if p == nil {
		return nil
	}
	if err := a.removeConfigs(p.Spec.ConfigFiles, spec.ConfigFiles); err != nil {
		return err
	}
	delete(st.Pending, spec.Name)
	if err := a.saveState(st); err != nil {
		return err
	}
	a.journal(spec.Name, p.Spec.Version, "abandoned", "the host was kept at "+spec.Version)
	return nil
}

// artifactFor returns the verified artifact of spec, or "" when the installer does not need it
// (already installed, or the local installer still has it unpacked).
func (a *Activities) artifactFor(ctx context.Context, spec hostapi.PackageSpec) (string, error) {
	if spec.Type == hostapi.TypeSystemSetting {
		return "", nil
	}
	inst := a.installerFor(spec.Installer)
	pkg := pkgOf(spec)
	if ok, err := inst.Installed(ctx, pkg); err != nil || ok {
		return "", err
	}
	if inst.Staged(pkg) {
		return "", nil
	}
	heartbeat(ctx, fmt.Sprintf("downloading %s %s", spec.Name, spec.Version))
	path, err := a.fetcher(ctx, spec).Fetch(ctx, spec.ArtifactURL, spec.SHA256)
	if err != nil {
		return "", a.fetchError(ctx, spec, err)
	}
	a.journal(spec.Name, spec.Version, "downloaded", spec.ArtifactURL)
	return path, nil
}

// fetchError turns a failed download into the error type that tells the workflow whether to
// wait (the artifact server will heal) or give up on this spec (the artifact is wrong or gone).
func (a *Activities) fetchError(ctx context.Context, spec hostapi.PackageSpec, err error) error {
	if ctx.Err() != nil {
		// The activity's own deadline or a cancellation: a timeout, which the workflow
		// already reads as "try again".
		return fmt.Errorf("package %s %s: %w", spec.Name, spec.Version, err)
	}
	switch fetch.Classify(err) {
	case fetch.FailureChecksum:
		var ce *fetch.ChecksumError
		errors.As(err, &ce)
		a.journal(spec.Name, spec.Version, "refused", ce.Error())
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"package %s %s: artifact %s has sha256 %s, expected %s; nothing on the host was changed",
			spec.Name, spec.Version, ce.URL, ce.Actual, ce.Expected), hostapi.ErrTypeChecksumMismatch, nil)
	case fetch.FailureMissing:
		a.journal(spec.Name, spec.Version, "refused", err.Error())
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf(
			"package %s %s: %v: the spec names an artifact this host cannot have (a bad spec: retrying will not help); nothing on the host was changed",
			spec.Name, spec.Version, err), hostapi.ErrTypeBadSpec, nil)
	case fetch.FailureTransient:
		// Retryable: Temporal's retry policy repeats it, and a workflow that runs out of
		// attempts waits instead of recording a failure.
		return temporal.NewApplicationError(fmt.Sprintf(
			"package %s %s: artifact unavailable for now: %v; nothing on the host was changed, try again later",
			spec.Name, spec.Version, err), hostapi.ErrTypeArtifactUnavailable)
	}
	return fmt.Errorf("package %s %s: %w", spec.Name, spec.Version, err)
}

// apply puts spec on the host over prev (nil when absent). Each step checks before it acts, so
// applying again after an interruption repeats nothing that was done.
func (a *Activities) apply(ctx context.Context, prev *packageRecord, spec hostapi.PackageSpec, artifact string) error {
	if spec.Type != hostapi.TypeSystemSetting {
		inst := a.installerFor(spec.Installer)
		pkg := pkgOf(spec)
		if ok, err := inst.Installed(ctx, pkg); err != nil {
			return err
		} else if !ok {
			if prev != nil && prev.Spec.Installer != spec.Installer {
				// Another installer had it: take that one off first.
				if err := a.stopService(prev.Spec); err != nil {
					return err
				}
				if err := a.installerFor(prev.Spec.Installer).Remove(ctx, prev.Spec.Name); err != nil {
					return err
				}
			}
			if err := inst.Install(ctx, pkg, artifact, func(d string) { heartbeat(ctx, d) }); err != nil {
				return err
			}
			a.journal(spec.Name, spec.Version, "unpacked", spec.Installer)
		}
	}
	if _, err := a.ensureConfigs(spec.ConfigFiles); err != nil {
		return err
	}
	if prev != nil {
		if err := a.removeConfigs(prev.Spec.ConfigFiles, spec.ConfigFiles); err != nil {
			return err
		}
	}
	if _, err := a.ensureSysctls(spec.Name, spec.Sysctls); err != nil {
		return err
	}
	if prev != nil && prev.Spec.Service != nil && (spec.Service == nil || spec.Service.Name != prev.Spec.Service.Name) {
		if err := a.stopService(prev.Spec); err != nil {
			return err
		}
	}
	if spec.Service != nil {
		return a.startService(ctx, spec)
	}
	return nil
}

// rollback undoes a failed change: back to prev, running, or (a first install) nothing at all.
// It returns the InstallFailed error the workflow reports.
func (a *Activities) rollback(ctx context.Context, st *hostState, prev *packageRecord, spec hostapi.PackageSpec, cause error) error {
	a.log().Warn("package change failed; rolling back", "package", spec.Name, "version", spec.Version, "err", cause)
	var undo error
	if prev == nil {
		undo = a.takeOff(ctx, spec)
	} else {
		if spec.Service != nil && (prev.Spec.Service == nil || prev.Spec.Service.Name != spec.Service.Name) {
			undo = a.stopService(spec)
		}
		if undo == nil {
			undo = a.removeConfigs(spec.ConfigFiles, prev.Spec.ConfigFiles)
		}
		if undo == nil {
			var artifact string
			artifact, undo = a.artifactFor(ctx, prev.Spec)
			if undo == nil {
				undo = a.apply(ctx, nil, prev.Spec, artifact)
			}
		}
	}
	delete(st.Pending, spec.Name)
	if err := a.saveState(st); err != nil {
		undo = errors.Join(undo, err)
	}
	var msg string
	switch {
	case undo != nil:
		msg = fmt.Sprintf("%v; rolling back failed too: %v", cause, undo)
		a.journal(spec.Name, spec.Version, "rollback-failed", msg)
	case prev == nil:
		msg = fmt.Sprintf("%v; nothing of %s %s is left on the host", cause, spec.Name, spec.Version)
		a.journal(spec.Name, spec.Version, "install-failed", cause.Error())
	default:
		running := ""
		if prev.Spec.Service != nil {
			running = " and its service " + prev.Spec.Service.Name + " runs again"
		}
		msg = fmt.Sprintf("%v; rolled back: %s %s is installed%s", cause, prev.Spec.Name, prev.Spec.Version, running)
		a.journal(spec.Name, spec.Version, "rolled-back", prev.Spec.Version)
	}
	return temporal.NewNonRetryableApplicationError(msg, hostapi.ErrTypeInstallFailed, nil)
}

// takeOff removes everything spec put on the host: service, files, configs, sysctls.
func (a *Activities) takeOff(ctx context.Context, spec hostapi.PackageSpec) error {
	errs := []error{a.stopService(spec)}
	if spec.Type != hostapi.TypeSystemSetting {
		errs = append(errs, a.installerFor(spec.Installer).Remove(ctx, spec.Name))
	}
	errs = append(errs, a.removeConfigs(spec.ConfigFiles, nil), a.removeSysctls(spec.Name))
	return errors.Join(errs...)
}

// tidy drops what a completed change no longer needs: the cached artifact, and unpacked
// versions other than the new one and the one before it (kept for a quick rollback).
func (a *Activities) tidy(spec hostapi.PackageSpec, prev *packageRecord) {
	if spec.SHA256 != "" {
		_ = a.fetcher(context.Background(), spec).Forget(spec.SHA256)
	}
	if l, ok := a.installerFor(spec.Installer).(*installer.Local); ok {
		keep := []string{spec.Version}
		if prev != nil {
			keep = append(keep, prev.Spec.Version)
		}
		if err := l.Prune(spec.Name, keep...); err != nil {
			a.log().Warn("cannot prune old package versions", "package", spec.Name, "err", err)
		}
	}
}

// repair puts a package that is at the right version back to its spec and says what it fixed.
// received is the spec as the workflow sent it, recorded when it is new; the local loop, which
// repairs to the recorded spec, passes the record's own.
func (a *Activities) repair(ctx context.Context, st *hostState, cur *packageRecord, spec hostapi.PackageSpec, received *hostapi.PackageSpec) (hostapi.EnsurePackageResult, error) {
	res := hostapi.EnsurePackageResult{Action: hostapi.EnsureNone}
	var repairs []string
	fail := func(err error) (hostapi.EnsurePackageResult, error) {
		res.Repairs = repairs
		if ctx.Err() != nil {
			return res, err
		}
		return res, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("repair %s %s: %v", spec.Name, spec.Version, err), hostapi.ErrTypeInstallFailed, nil)
	}

	// Files of the package.
	if spec.Type != hostapi.TypeSystemSetting {
		inst := a.installerFor(spec.Installer)
		ok, err := inst.Installed(ctx, pkgOf(spec))
		if err != nil {
			return fail(err)
		}
		if !ok {
			artifact, err := a.artifactFor(ctx, spec)
			if err != nil {
				return res, err // checksum mismatch or download trouble: reported as is
			}
			if err := inst.Install(ctx, pkgOf(spec), artifact, func(d string) { heartbeat(ctx, d) }); err != nil {
				return fail(err)
			}
			a.tidy(spec, nil)
			repairs = append(repairs, fmt.Sprintf("reinstalled %s %s (its files were missing or replaced)", spec.Name, spec.Version))
		}
	}

	// Configs and sysctls.
	fixed, err := a.ensureConfigs(spec.ConfigFiles)
	repairs = append(repairs, fixed...)
	if err != nil {
		return fail(err)
	}
	if cur.SpecHash != specHash(spec) {
		if err := a.removeConfigs(cur.Spec.ConfigFiles, spec.ConfigFiles); err != nil {
			return fail(err)
		}
	}
	fixed, err = a.ensureSysctls(spec.Name, spec.Sysctls)
	repairs = append(repairs, fixed...)
	if err != nil {
		return fail(err)
	}

	// The service.
	if spec.Service != nil {
		restart, report, err := a.serviceDrift(spec, len(repairs) > 0)
		if err != nil {
			return fail(err)
		}
		if restart != "" {
			if err := a.startService(ctx, spec); err != nil {
				return fail(err)
			}
			repairs = append(repairs, restart)
		} else if report != "" {
			repairs = append(repairs, report)
		}
	} else if cur.Spec.Service != nil {
		if err := a.stopService(cur.Spec); err != nil {
			return fail(err)
		}
	}

	if cur.SpecHash != specHash(spec) || !cur.sameReceived(received) {
		st.Packages[spec.Name] = newRecord(spec, received)
		if err := a.saveState(st); err != nil {
			return res, err
		}
	}
	if len(repairs) > 0 {
		res.Action, res.Repairs = hostapi.EnsureRepaired, repairs
		a.journal(spec.Name, spec.Version, "repaired", strings.Join(repairs, "; "))
		a.log().Info("drift repaired", "package", spec.Name, "version", spec.Version, "repairs", repairs)
	}
	return res, nil
}

// serviceDrift says why the package's service must be (re)started, or, when it need not be,
// reports restarts the supervisor made on its own since the last check (the drift happened
// even though it is mended). filesChanged: the package's files or configs were just rewritten,
// and a running service would go on with the old ones.
func (a *Activities) serviceDrift(spec hostapi.PackageSpec, filesChanged bool) (restart, report string, err error) {
	sm, err := a.services()
	if err != nil {
		return "", "", err
	}
	name := spec.Service.Name
	st := sm.Status(name)
	have, known := sm.Spec(name)
	switch {
	case !known:
		return fmt.Sprintf("started service %s (it was not running)", name), "", nil
	case !st.Running:
		return fmt.Sprintf("restarted stopped service %s (last exit: %s)", name, st.LastExit), "", nil
	case !have.Equal(a.serviceSpec(spec)):
		return fmt.Sprintf("restarted service %s (its command line or environment differed)", name), "", nil
	case filesChanged:
		return fmt.Sprintf("restarted service %s to load the repaired files", name), "", nil
	}
	if n := a.unackedRestarts(name, st.Restarts); n > 0 {
		return "", fmt.Sprintf("service %s had stopped (last exit: %s); the agent's supervisor restarted it (%d time(s))", name, st.LastExit, n), nil
	}
	return "", "", nil
}
