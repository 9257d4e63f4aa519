package host

import (
	"context"
	"sort"

	"kok.dev/contract/hostapi"
)

// InspectHost says how the host compares with what the workflow wants, without changing
// anything: the digest of the specs the host has applied, the boot, the installed packages,
// the local loop's repairs after p.RepairsSince and its last health verdicts. It reads the
// agent's state file and the supervisor's view, nothing over the network, so it is cheap and
// safe to run any number of times: it is the one activity of a Machine at rest.
func (a *Activities) InspectHost(_ context.Context, p hostapi.InspectHostParams) (hostapi.InspectHostResult, error) {
	st, err := a.loadState()
	if err != nil {
		return hostapi.InspectHostResult{}, err
	}
	res := hostapi.InspectHostResult{
		Digest:    appliedDigest(st),
		BootID:    a.bootID(st),
		Installed: a.installed(st),
		Unhealthy: a.unhealthy(st),
	}
	res.Repairs, res.RepairSeq, res.RepairsLost = repairsSince(st, p.RepairsSince)
	return res, nil
}

// appliedDigest is hostapi.DesiredDigest of the specs the host has applied as the workflow
// sent them. A record from an agent release that did not keep the received spec contributes
// its normalized spec: when that equals what the workflow sends the digests agree (and rightly
// so, it is applied), otherwise they differ once and the workflow's EnsurePackage pass records
// the received spec. A change under way makes the digest unlike any DesiredDigest.
func appliedDigest(st *hostState) string {
	specs := make([]hostapi.PackageSpec, 0, len(st.Packages))
	for _, name := range st.names() {
		rec := st.Packages[name]
		if rec.Received != nil {
			specs = append(specs, *rec.Received)
		} else {
			specs = append(specs, rec.Spec)
		}
	}
	d := hostapi.DesiredDigest(specs)
	if len(st.Pending) > 0 {
		return "pending:" + d
	}
	return d
}

// repairsSince returns the kept repairs after since, the newest Seq, and how many repairs after
// since are no longer kept. A since beyond the newest Seq means the agent's count started over
// (its state was reset): every kept repair is new to the caller then.
func repairsSince(st *hostState, since int64) ([]hostapi.LocalRepair, int64, int64) {
	if since > st.RepairSeq || since < 0 {
		since = 0
	}
	var out []hostapi.LocalRepair
	for _, r := range st.Repairs {
		if r.Seq > since {
			out = append(out, r)
		}
	}
	return out, st.RepairSeq, st.RepairSeq - since - int64(len(out))
}

// unhealthy is the local loop's last verdicts on the packages installed now (a verdict on a
// version since replaced or removed no longer counts), sorted by name.
func (a *Activities) unhealthy(st *hostState) []hostapi.PackageHealth {
	a.init()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []hostapi.PackageHealth
	for name, h := range a.health {
		if rec := st.Packages[name]; rec != nil && rec.Spec.Version == h.Version {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
