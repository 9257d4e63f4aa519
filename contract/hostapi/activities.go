package hostapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
)

// Activity names: the wire names kok-agent registers its activities under and workflows schedule
// them by. Renaming a Go method changes nothing on the wire; changing one of these breaks every
// running workflow and every agent of an older release, so they never change.
const (
	ActivityFacts          = "Facts"
	ActivityEnsurePackage  = "EnsurePackage"
	ActivityRemovePackage  = "RemovePackage"
	ActivityCheckHealth    = "CheckHealth"
	ActivityControlService = "ControlService"
	ActivityReboot         = "Reboot"
	ActivityInspectHost    = "InspectHost"
)

// InspectHostParams asks the agent how its host compares with what the workflow wants. It is the
// one activity of a Machine at rest: the agent keeps the host at the specs it last applied with
// its own local loop (no Temporal traffic), and the workflow only compares digests.
type InspectHostParams struct {
	// Digest is DesiredDigest of the packages the workflow wants on the host.
	Digest string
	// RepairsSince is the last LocalRepair.Seq the workflow has seen; the result carries only
	// later ones, so every repair is reported (and turned into an Event) once. When it is
	// beyond the agent's newest Seq (the agent's state was reset, say by a reinstalled host),
	// the agent reports every repair it keeps, and RepairSeq starts the count afresh.
	RepairsSince int64
}

// InspectHostResult is the host as the agent sees it now.
type InspectHostResult struct {
	// Digest is DesiredDigest of the specs the host has applied, exactly as EnsurePackage
	// received them; equal to the params' Digest when the host is at the workflow's spec. It
	// differs from every DesiredDigest ("pending:" prefix) while a change is recorded as under
	// way, so the workflow runs EnsurePackage to finish or drop it. An agent upgraded from a
	// release before InspectHost digests what it has (normalized specs), which may differ once:
	// the EnsurePackage pass that follows records the specs as received.
	Digest string
	// BootID changes with every boot (see FactsResult.BootID).
	BootID string
	// Installed lists the installed packages, sorted by name.
	Installed []InstalledPackage
	// Repairs are the local loop's repairs after RepairsSince, oldest first (bounded: the agent
	// keeps the last few hundred).
	Repairs []LocalRepair
	// RepairSeq is the newest repair's Seq (RepairsSince when there is none): the next call's
	// RepairsSince.
	RepairSeq int64
	// RepairsLost counts repairs after RepairsSince that the agent no longer keeps (more than
	// its bound happened since the last call); they are in the agent's journal on the host.
	RepairsLost int64
	// Unhealthy lists installed packages whose last local check failed, sorted by name. Empty
	// until the agent's first local round after it started (about ten seconds).
	Unhealthy []PackageHealth
}

// LocalRepair is one drift the agent's local loop found and fixed on its own.
type LocalRepair struct {
	Seq     int64
	Package string
	Version string
	// What says in words what was fixed, e.g. "restarted stopped service kubelet".
	What string
	// At is when, as RFC 3339 text from the host's clock (informational only).
	At string
}

// PackageHealth is one package's health as the agent last checked it.
type PackageHealth struct {
	Name    string
	Version string
	Message string
}

// DesiredDigest identifies a set of package specs independently of their order: the workflow
// computes it over the specs it wants, the agent over the specs it has applied, and the two are
// equal exactly when the host is at spec. encoding/json writes struct fields in declaration
// order and map keys sorted, so the digest is stable across processes and releases as long as
// PackageSpec keeps its fields.
func DesiredDigest(specs []PackageSpec) string {
	sorted := append([]PackageSpec(nil), specs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	data, _ := json.Marshal(sorted)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
