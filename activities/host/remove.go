package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"
)

// RemovePackage stops a package's service and takes the package, its configs and its sysctls
// off the host. Removing a package the host does not have succeeds with Changed false; a
// package whose install was interrupted (pending) is cleaned up too.
func (a *Activities) RemovePackage(ctx context.Context, p hostapi.RemovePackageParams) (hostapi.RemovePackageResult, error) {
	if !dnsLabelRE.MatchString(p.Name) {
		return hostapi.RemovePackageResult{}, validate(hostapi.PackageSpec{Name: p.Name})
	}
	for _, dir := range p.Purge {
		if !purgeable(dir) {
			return hostapi.RemovePackageResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("remove %s: purge path %q must be a clean absolute path strictly below /var/lib/kok/ or /etc/kok/", p.Name, dir), hostapi.ErrTypeBadSpec, nil)
		}
	}
	ctx, stop := keepAlive(ctx)
	defer stop()
	unlock, err := a.acquire(ctx)
	if err != nil {
		return hostapi.RemovePackageResult{}, err
	}
	defer unlock()
	st, err := a.loadState()
	if err != nil {
		return hostapi.RemovePackageResult{}, err
	}
	cur, pending := st.Packages[p.Name], st.Pending[p.Name]
	var res hostapi.RemovePackageResult
	var errs []error
	for _, rec := range []*packageRecord{pending, cur} {
		if rec == nil {
			continue
		}
		res.Changed = true
		if rec == cur {
			res.Version = rec.Spec.Version
		}
		heartbeat(ctx, fmt.Sprintf("removing %s %s", p.Name, rec.Spec.Version))
		errs = append(errs, a.takeOff(ctx, rec.Spec))
	}
	// A local install killed before it recorded anything may have left files; they go too.
	if !res.Changed {
		dir := a.installerFor(hostapi.InstallerLocal).PackageDir(pkgOf(hostapi.PackageSpec{Name: p.Name}))
		if _, err := os.Stat(dir); err == nil {
			res.Changed = true
			errs = append(errs, a.installerFor(hostapi.InstallerLocal).Remove(ctx, p.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("remove %s: %w", p.Name, err)
	}
	for _, dir := range p.Purge {
		full := a.path(dir)
		if _, err := os.Stat(full); err != nil {
			continue
		}
		if err := os.RemoveAll(full); err != nil {
			return res, fmt.Errorf("remove %s: purge %s: %w", p.Name, dir, err)
		}
		res.Changed = true
		a.journal(p.Name, res.Version, "purged", dir)
	}
	if !res.Changed {
		return res, nil
	}
	delete(st.Packages, p.Name)
	delete(st.Pending, p.Name)
	if err := a.saveState(st); err != nil {
		return res, err
	}
	a.journal(p.Name, res.Version, "removed", "")
	a.log().Info("package removed", "package", p.Name, "version", res.Version)
	return res, nil
}

// purgeable admits only kok's own data and config trees, and never their roots: a purge is
// the last step of deleting a cluster and must not be able to reach anything else on the host.
func purgeable(dir string) bool {
	if dir != path.Clean(dir) || !path.IsAbs(dir) {
		return false
	}
	for _, root := range []string{"/var/lib/kok/", "/etc/kok/"} {
		if strings.HasPrefix(dir, root) && len(dir) > len(root) {
			return true
		}
	}
	return false
}
