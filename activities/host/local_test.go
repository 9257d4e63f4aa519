package host

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"kok.dev/contract/hostapi"
)

func (h *testHost) inspect(p hostapi.InspectHostParams) hostapi.InspectHostResult {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(h.a.InspectHost, p)
	require.NoError(h.t, err)
	var res hostapi.InspectHostResult
	require.NoError(h.t, val.Get(&res))
	return res
}

func whats(rs []hostapi.LocalRepair) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.What)
	}
	return out
}

func seqs(rs []hostapi.LocalRepair) []int64 {
	out := make([]int64, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Seq)
	}
	return out
}

func TestLocalLoopRepairsAndInspectReportsEachRepairOnce(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	ctx := context.Background()
	h := newHost(t, root, slowRestarts)
	v1 := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	h.mustEnsure(v1)

	// At spec: the round does nothing.
	r := h.a.localRound(ctx)
	require.Empty(t, r.skipped)
	require.Empty(t, r.repairs)
	require.Empty(t, r.unhealthy)
	res := h.inspect(hostapi.InspectHostParams{})
	require.Empty(t, res.Repairs)
	require.Zero(t, res.RepairSeq)

	// A stopped service is started again.
	require.NoError(t, h.sup.Stop("demo"))
	r = h.a.localRound(ctx)
	require.Equal(t, []string{"started service demo (it was not running)"}, whats(r.repairs))
	require.True(t, h.sup.Status("demo").Running)

	// A changed config is rewritten, and the service restarted to load it.
	pid := h.sup.Status("demo").PID
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/demo/demo.conf"), []byte("version = hacked\n"), 0o644))
	r = h.a.localRound(ctx)
	require.Equal(t, []string{"rewrote /etc/demo/demo.conf (content differed)", "restarted service demo to load the repaired files"}, whats(r.repairs))
	requireFile(t, filepath.Join(root, "etc/demo/demo.conf"), "version = 1.0.0\n", 0o644)
	require.NotEqual(t, pid, h.sup.Status("demo").PID)
	require.Len(t, h.journal("repaired"), 2, "each round's repairs are journaled as EnsurePackage journals its own")

	// InspectHost reports each repair once.
	res = h.inspect(hostapi.InspectHostParams{})
	require.Equal(t, []int64{1, 2, 3}, seqs(res.Repairs))
	require.Equal(t, hostapi.LocalRepair{Seq: 1, Package: "demo", Version: "1.0.0", What: "started service demo (it was not running)", At: res.Repairs[0].At}, res.Repairs[0])
	require.Equal(t, int64(3), res.RepairSeq)
	res = h.inspect(hostapi.InspectHostParams{RepairsSince: res.RepairSeq})
	require.Empty(t, res.Repairs)
	require.Equal(t, int64(3), res.RepairSeq)
	require.Equal(t, []int64{2, 3}, seqs(h.inspect(hostapi.InspectHostParams{RepairsSince: 1}).Repairs))
	require.Empty(t, h.a.localRound(ctx).repairs, "nothing left to repair")

	// The agent restarts: a new process on the same root. The count goes on from the state file.
	h.sup.Close()
	h2 := newHost(t, root, slowRestarts)
	require.NoError(t, StartInstalledServices(ctx, h2.a))
	require.Empty(t, h2.inspect(hostapi.InspectHostParams{RepairsSince: 3}).Repairs, "nothing is reported twice")
	require.NoError(t, h2.sup.Stop("demo"))
	require.Equal(t, []int64{4}, seqs(h2.a.localRound(ctx).repairs))
	res = h2.inspect(hostapi.InspectHostParams{RepairsSince: 3})
	require.Equal(t, []int64{4}, seqs(res.Repairs))
	require.Equal(t, int64(4), res.RepairSeq)

	// A workflow that has seen more than the agent knows (the agent's state was reset) gets
	// every kept repair, and the count the agent has now.
	res = h2.inspect(hostapi.InspectHostParams{RepairsSince: 99})
	require.Equal(t, []int64{1, 2, 3, 4}, seqs(res.Repairs))
	require.Equal(t, int64(4), res.RepairSeq)
}

func TestLocalRepairsAreBounded(t *testing.T) {
	st := &hostState{Packages: map[string]*packageRecord{}}
	for range maxRepairs + 10 {
		st.RepairSeq++
		st.Repairs = append(st.Repairs, hostapi.LocalRepair{Seq: st.RepairSeq})
	}
	st.Repairs = st.Repairs[10:] // as localRound trims
	got, seq, lost := repairsSince(st, 5)
	require.Len(t, got, maxRepairs)
	require.Equal(t, int64(11), got[0].Seq)
	require.Equal(t, int64(maxRepairs+10), seq)
	require.Equal(t, int64(5), lost, "seqs 6 to 10 are no longer kept")
	got, _, lost = repairsSince(st, seq-1)
	require.Equal(t, []int64{seq}, seqs(got))
	require.Zero(t, lost)
}

func TestLocalRoundSkipsWhileTheHostIsBusy(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	ctx := context.Background()
	h := newHost(t, root, slowRestarts)
	v1 := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	h.mustEnsure(v1)
	require.NoError(t, h.sup.Stop("demo"))

	// An activity holds the host lock.
	release, err := h.a.acquire(ctx)
	require.NoError(t, err)
	r := h.a.localRound(ctx)
	require.Equal(t, "an activity holds the host lock", r.skipped)
	require.False(t, h.sup.Status("demo").Running, "the round did not touch the host")
	release()

	// A change is recorded as under way (an agent died mid-install): the workflow's next
	// EnsurePackage finishes it, not the loop.
	st, err := h.a.loadState()
	require.NoError(t, err)
	st.Pending["demo"] = newRecord(normalize(v1), &v1)
	require.NoError(t, h.a.saveState(st))
	r = h.a.localRound(ctx)
	require.Equal(t, "a change of [demo] is under way", r.skipped)
	require.False(t, h.sup.Status("demo").Running)
	require.True(t, strings.HasPrefix(h.inspect(hostapi.InspectHostParams{}).Digest, "pending:"), "a change under way is never at spec")

	delete(st.Pending, "demo")
	require.NoError(t, h.a.saveState(st))
	require.Len(t, h.a.localRound(ctx).repairs, 1)
	require.True(t, h.sup.Status("demo").Running)
}

func TestLocalRoundReportsUnhealthyPackages(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	ctx := context.Background()
	h := newHost(t, root)
	spec := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	spec.HealthCheck = &hostapi.ProbeSpec{Exec: []string{"/bin/test", "-f", "${KOK_ROOT}/run/demo.ready"}}
	h.mustEnsure(spec)

	require.Empty(t, h.inspect(hostapi.InspectHostParams{}).Unhealthy, "no verdict before the first round")
	r := h.a.localRound(ctx)
	require.Len(t, r.unhealthy, 1)
	res := h.inspect(hostapi.InspectHostParams{})
	require.Len(t, res.Unhealthy, 1)
	require.Equal(t, "demo", res.Unhealthy[0].Name)
	require.Equal(t, "1.0.0", res.Unhealthy[0].Version)
	require.Contains(t, res.Unhealthy[0].Message, "exit status 1")

	require.NoError(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "run/demo.ready"), nil, 0o644))
	require.Empty(t, h.a.localRound(ctx).unhealthy)
	require.Empty(t, h.inspect(hostapi.InspectHostParams{}).Unhealthy)
}

func TestInspectHostDigest(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	// As a workflow sends them: defaults left to the agent (type, service restart policy).
	demo := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))
	tuning := hostapi.PackageSpec{Name: "tuning", Version: "1", Type: hostapi.TypeSystemSetting, Sysctls: map[string]string{"vm.max_map_count": "262144"}}
	require.NotEqual(t, hostapi.DesiredDigest([]hostapi.PackageSpec{demo}), hostapi.DesiredDigest([]hostapi.PackageSpec{normalize(demo)}),
		"the test needs a spec the agent normalizes")
	h.mustEnsure(demo)
	h.mustEnsure(tuning)

	want := hostapi.DesiredDigest([]hostapi.PackageSpec{tuning, demo})
	res := h.inspect(hostapi.InspectHostParams{Digest: want})
	require.Equal(t, want, res.Digest)
	require.Equal(t, "simulated-boot-0", res.BootID)
	require.Equal(t, h.facts().Installed, res.Installed)

	// One spec changes (a config at the same version): the digests differ until it is applied.
	changed := demo
	changed.ConfigFiles = []hostapi.ConfigFile{{Path: "/etc/demo/demo.conf", Content: "version = 1.0.0\nverbose = true\n"}}
	want = hostapi.DesiredDigest([]hostapi.PackageSpec{changed, tuning})
	require.NotEqual(t, want, h.inspect(hostapi.InspectHostParams{Digest: want}).Digest)
	require.Equal(t, hostapi.EnsureRepaired, h.mustEnsure(changed).Action)
	require.Equal(t, want, h.inspect(hostapi.InspectHostParams{Digest: want}).Digest)

	// An agent upgraded from the release before InspectHost: its records lack the received
	// spec. The digest of what it has differs once; the ordinary EnsurePackage pass the
	// workflow then runs changes nothing on the host and records the spec as received.
	st, err := h.a.loadState()
	require.NoError(t, err)
	for _, rec := range st.Packages {
		rec.Received = nil
	}
	require.NoError(t, h.a.saveState(st))
	got := h.inspect(hostapi.InspectHostParams{Digest: want}).Digest
	require.NotEqual(t, want, got)
	require.Equal(t, hostapi.DesiredDigest([]hostapi.PackageSpec{normalize(changed), normalize(tuning)}), got)
	pid := h.sup.Status("demo").PID
	require.Equal(t, hostapi.EnsureNone, h.mustEnsure(changed).Action)
	require.Equal(t, hostapi.EnsureNone, h.mustEnsure(tuning).Action)
	require.Equal(t, pid, h.sup.Status("demo").PID)
	require.Equal(t, want, h.inspect(hostapi.InspectHostParams{Digest: want}).Digest)
}

func TestArtifactServerErrorsAreClassified(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/busy.tar.gz":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root)
	spec := demoSpec(t, src, "1.0.0", demoScript("1.0.0"))

	spec.ArtifactURL = srv.URL + "/busy.tar.gz"
	_, err := h.ensure(spec)
	typ, msg := appErrType(t, err)
	require.Equal(t, hostapi.ErrTypeArtifactUnavailable, typ)
	require.Contains(t, msg, spec.ArtifactURL)
	require.Contains(t, msg, "503 Service Unavailable")
	require.False(t, hostapi.PermanentError(typ))
	requireRetryable(t, err, true)

	spec.ArtifactURL = srv.URL + "/gone.tar.gz"
	_, err = h.ensure(spec)
	typ, msg = appErrType(t, err)
	require.Equal(t, hostapi.ErrTypeBadSpec, typ)
	require.Contains(t, msg, spec.ArtifactURL)
	require.Contains(t, msg, "404 Not Found")
	require.Contains(t, msg, "bad spec")
	require.True(t, hostapi.PermanentError(typ))
	requireRetryable(t, err, false)

	require.Empty(t, h.state().Packages, "nothing was installed")
	require.Empty(t, h.state().Pending)
	require.NoDirExists(t, filepath.Join(root, "opt"))
}

func requireRetryable(t *testing.T, err error, want bool) {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	require.Equal(t, want, !ae.NonRetryable(), "retryable")
}

func TestRunLocalLoopRepairsOnItsOwnAndStopsOnCancel(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root, slowRestarts)
	h.mustEnsure(demoSpec(t, src, "1.0.0", demoScript("1.0.0")))
	require.NoError(t, h.sup.Stop("demo"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunLocalLoop(ctx, h.a, 20*time.Millisecond)
	}()
	require.Eventually(t, func() bool { return h.sup.Status("demo").Running }, 10*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(h.inspect(hostapi.InspectHostParams{}).Repairs) == 1 }, 10*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the local loop did not stop when its context ended")
	}
}

func TestJitterStaysWithinTenPercent(t *testing.T) {
	for range 1000 {
		d := jitter(90 * time.Second)
		require.GreaterOrEqual(t, d, 81*time.Second)
		require.LessOrEqual(t, d, 99*time.Second)
	}
}
