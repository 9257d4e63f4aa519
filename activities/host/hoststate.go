package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/activity"

	"kok.dev/internal/agent/fetch"
	"kok.dev/internal/agent/installer"
	"kok.dev/internal/agent/state"
)

// Where the agent keeps its own files, relative to the host root.
const (
	StateFile   = "var/lib/kok/state.json"
	JournalFile = "var/lib/kok/journal.jsonl"
	LockFile    = "var/lib/kok/agent.lock"
	CacheDir    = "var/cache/kok/artifacts"
	LogDir      = "var/log/kok"
	RunDir      = "run/kok"
	SysctlDir   = "etc/sysctl.d"
)

// hostState is the agent's record of its host, in StateFile.
type hostState struct {
	// BootCount counts the boots of a simulated host.
	BootCount int `json:"bootCount,omitempty"`
	// Packages are the installed packages by name: what was last completely applied.
	Packages map[string]*packageRecord `json:"packages,omitempty"`
	// Pending are package versions being applied, by name: written before the first change on
	// disk and cleared when the change completes or is rolled back, so an agent that died in
	// between knows what may be half there (RemovePackage cleans it up; EnsurePackage finishes
	// it).
	Pending map[string]*packageRecord `json:"pending,omitempty"`
	// RepairSeq is the Seq of the local loop's newest repair. It only grows, and it is saved
	// with the repair, so a restarted agent neither reports a repair twice nor reuses a Seq.
	RepairSeq int64 `json:"repairSeq,omitempty"`
	// Repairs are the local loop's latest repairs, oldest first, at most maxRepairs.
	Repairs []hostapi.LocalRepair `json:"repairs,omitempty"`
}

// packageRecord is one applied package version.
type packageRecord struct {
	// Spec is the spec as the agent applied it: normalized, defaults filled in.
	Spec     hostapi.PackageSpec `json:"spec"`
	SpecHash string              `json:"specHash"`
	// Received is the spec exactly as EnsurePackage received it: hostapi.DesiredDigest is
	// computed over it, so the agent's digest equals the workflow's when the host is at spec.
	// Records written by agents before the local loop lack it (see appliedDigest).
	Received  *hostapi.PackageSpec `json:"received,omitempty"`
	AppliedAt time.Time            `json:"appliedAt"`
}

// newRecord records spec (normalized) as applied; received is the spec as the workflow sent it.
func newRecord(spec hostapi.PackageSpec, received *hostapi.PackageSpec) *packageRecord {
	return &packageRecord{Spec: spec, SpecHash: specHash(spec), Received: received, AppliedAt: time.Now().UTC()}
}

// sameReceived reports whether rec already holds received (nil: nothing new to record).
func (r *packageRecord) sameReceived(received *hostapi.PackageSpec) bool {
	if received == nil {
		return true
	}
	return r.Received != nil && specHash(*r.Received) == specHash(*received)
}

// specHash identifies a spec: encoding/json writes struct fields in order and map keys sorted.
func specHash(spec hostapi.PackageSpec) string {
	data, _ := json.Marshal(spec)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (s *hostState) names() []string {
	names := make([]string, 0, len(s.Packages))
	for n := range s.Packages {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (a *Activities) init() {
	a.initOnce.Do(func() {
		a.busy = make(chan struct{}, 1)
		a.acked = map[string]int{}
		a.health = map[string]hostapi.PackageHealth{}
	})
}

func (a *Activities) path(rel string) string { return filepath.Join(a.Root, rel) }

func (a *Activities) stateFile() state.File[hostState] {
	return state.File[hostState]{Path: a.path(StateFile)}
}

func (a *Activities) loadState() (*hostState, error) {
	st, err := a.stateFile().Load()
	if err != nil {
		return nil, err
	}
	if st.Packages == nil {
		st.Packages = map[string]*packageRecord{}
	}
	if st.Pending == nil {
		st.Pending = map[string]*packageRecord{}
	}
	return &st, nil
}

func (a *Activities) saveState(st *hostState) error { return a.stateFile().Save(*st) }

func (a *Activities) journal(pkg, version, step, detail string) {
	err := state.Journal{Path: a.path(JournalFile)}.Append(state.Entry{Package: pkg, Version: version, Step: step, Detail: detail})
	if err != nil {
		a.log().Warn("cannot write the agent journal", "err", err)
	}
}

// acquire waits for the host to be free of other changes.
func (a *Activities) acquire(ctx context.Context) (func(), error) {
	a.init()
	select {
	case a.busy <- struct{}{}:
		return func() { <-a.busy }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for another change on host %s to finish: %w", a.Host, ctx.Err())
	}
}

// tryAcquire takes the host lock if it is free, without waiting: the local loop never queues
// behind (or ahead of) a change a workflow asked for.
func (a *Activities) tryAcquire() (func(), bool) {
	a.init()
	select {
	case a.busy <- struct{}{}:
		return func() { <-a.busy }, true
	default:
		return nil, false
	}
}

func (a *Activities) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *Activities) settle() time.Duration {
	if a.SettleTime > 0 {
		return a.SettleTime
	}
	return time.Second
}

func (a *Activities) runner() installer.Runner {
	if a.Runner == nil {
		return installer.ExecRunner{}
	}
	return a.Runner
}

func (a *Activities) fetcher(ctx context.Context, spec hostapi.PackageSpec) *fetch.Fetcher {
	return &fetch.Fetcher{
		Dir: a.path(CacheDir),
		Progress: func(done, total int64) {
			heartbeat(ctx, fmt.Sprintf("downloading %s %s: %d of %d bytes", spec.Name, spec.Version, done, total))
		},
	}
}

// installerFor returns the installer of spec.Installer (already validated).
func (a *Activities) installerFor(name string) installer.Installer {
	switch name {
	case "deb":
		return &installer.Deb{Root: a.Root, Run: a.runner()}
	case "rpm":
		return &installer.RPM{Root: a.Root, Run: a.runner()}
	default:
		return &installer.Local{Root: a.Root}
	}
}

func pkgOf(spec hostapi.PackageSpec) installer.Package {
	return installer.Package{Name: spec.Name, Version: spec.Version, SHA256: spec.SHA256}
}

// heartbeat records progress when ctx belongs to an activity (the agent also runs these steps
// outside of one, when it starts). keepAlive repeats the last detail.
func heartbeat(ctx context.Context, detail string) {
	if !activity.IsActivity(ctx) {
		return
	}
	if last, ok := ctx.Value(lastDetailKey{}).(*atomic.Value); ok {
		last.Store(detail)
	}
	activity.RecordHeartbeat(ctx, detail)
}

type lastDetailKey struct{}

// keepAliveEvery is how often a running activity heartbeats even when no step reports progress
// (a package manager can work for minutes in silence); the SDK throttles heartbeats to what the
// activity's heartbeat timeout needs.
const keepAliveEvery = 5 * time.Second

// keepAlive heartbeats the last progress detail until the returned function is called, so that a
// long silent step is not taken for a dead agent.
func keepAlive(ctx context.Context) (context.Context, func()) {
	if !activity.IsActivity(ctx) {
		return ctx, func() {}
	}
	last := &atomic.Value{}
	last.Store("working")
	ctx = context.WithValue(ctx, lastDetailKey{}, last)
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(keepAliveEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, last.Load())
			}
		}
	}()
	return ctx, func() { close(done) }
}

// expander replaces ${KOK_ROOT}, ${KOK_HOST} and ${KOK_PACKAGE_DIR} and nothing else: the
// result is passed to a program without a shell, so any other '$' stays as written.
func (a *Activities) expander(pkgDir string) *strings.Replacer {
	return strings.NewReplacer("${KOK_ROOT}", a.kokRoot(), "${KOK_HOST}", a.Host, "${KOK_PACKAGE_DIR}", pkgDir)
}

// kokRoot is the root as a prefix for absolute paths: "" on a real host, so "${KOK_ROOT}/etc"
// is "/etc" there.
func (a *Activities) kokRoot() string { return strings.TrimSuffix(a.Root, "/") }
