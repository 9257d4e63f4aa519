package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/temporal"
	"go.temporal.io/server/temporaltest"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"kok.dev/activities/host"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/dev/simnode/fleet"
	"kok.dev/tests/harness"
	machinewf "kok.dev/workflows/machine"
)

// BenchmarkFleet measures one business cluster of N Machines at rest, on real parts: a meta
// API server and a business API server (kube-apiserver + etcd each), an in-process Temporal
// server, kok-manager as the meta manager (it runs every workflow) and kok-manager as the
// business cluster's machine operator (--serve-clusters=false), each its own process, and the
// fleet simulator (dev/simnode/fleet) holding N simulated hosts in this process: real host
// activities, real files, one simulated kubelet per host; only service processes are simulated.
//
// For each N (KOK_BENCH_FLEET_N, default 1000,2000,5000,10000) it brings the fleet up, waits
// for every Machine to converge, then measures at rest over KOK_BENCH_FLEET_WINDOW (default
// 10m): Temporal actions and history per machine (from the histories of a sample of Machine
// workflows), API requests the operator makes (the business API server's audit log, user
// kok-operator), all API requests (apiserver_request_total, simulator included), RSS and CPU of
// both kok-manager processes; then edit → converged for a few machines under that load, then
// an operator restart and what it costs in the next KOK_BENCH_FLEET_RESTART_WINDOW (default
// 5m). A size that cannot be held within KOK_BENCH_FLEET_BUDGET (default 25m per size) stops
// the series; the sizes after it are recorded as not attempted.
//
// Writes bench/results/fleet-steady.json.
func BenchmarkFleet(b *testing.B) {
	sizes := envInts(b, "KOK_BENCH_FLEET_N", []int{1000, 2000, 5000, 10000})
	cfg := fleetConfig{
		window:        envDuration(b, "KOK_BENCH_FLEET_WINDOW", 10*time.Minute),
		windowSet:     os.Getenv("KOK_BENCH_FLEET_WINDOW") != "",
		budgetSet:     os.Getenv("KOK_BENCH_FLEET_BUDGET") != "",
		restartWindow: envDuration(b, "KOK_BENCH_FLEET_RESTART_WINDOW", 5*time.Minute),
		budget:        envDuration(b, "KOK_BENCH_FLEET_BUDGET", 25*time.Minute),
		total:         envDuration(b, "KOK_BENCH_FLEET_TOTAL", 50*time.Minute),
		edits:         20,
		sample:        100,
	}
	out := fleetReport{
		Name:    "fleet-steady",
		Machine: machineDescription(),
		Commit:  gitCommit(),
		Goals: map[string]string{
			"actions_per_machine_hour":    "<= 10",
			"kok_writes_per_machine_hour": "0 at rest",
			"operator_rss_mib":            "<= 500 at 10,000 nodes",
			"edit_to_converged_p99_s":     "<= 30 at 10,000 nodes",
		},
		Method: fleetMethod,
	}
	start := time.Now()
	stopped := false
	for _, n := range sizes {
		if stopped {
			out.Runs = append(out.Runs, fleetRun{N: n, StoppedAt: "not attempted", Why: "a smaller size could not be held"})
			continue
		}
		if left := cfg.total - time.Since(start); left < cfg.window+cfg.restartWindow+5*time.Minute {
			out.Runs = append(out.Runs, fleetRun{N: n, StoppedAt: "not attempted", Why: fmt.Sprintf("time: %s of the %s budget left (KOK_BENCH_FLEET_TOTAL)", left.Round(time.Minute), cfg.total)})
			continue
		}
		var r fleetRun
		b.Run(strconv.Itoa(n), func(b *testing.B) { r = runFleet(b, n, cfg) })
		out.Runs = append(out.Runs, r)
		if r.StoppedAt != "" {
			stopped = true
		}
	}
	out.When = time.Now().UTC().Truncate(time.Second)
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s", data)
	if dir := os.Getenv("KOK_BENCH_RESULTS"); dir != "" {
		path := filepath.Join(dir, "fleet-steady.json")
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			b.Fatal(err)
		}
		b.Logf("figures written to %s", path)
	}
}

const fleetMethod = `Topology: meta API server + business API server (envtest kube-apiserver/etcd each), in-process Temporal server ` +
	`(temporaltest, sqlite in memory; dynamic config raised only where one 2-core test server would otherwise refuse a ` +
	`fleet: frontend.namespaceCount, rps limits; task queues with 1 partition), kok-manager (meta: every workflow) and ` +
	`kok-manager --serve-clusters=false (the business cluster's machine operator, leader election on) as processes, ` +
	`N simulated hosts in the bench process (dev/simnode/fleet: real host activities and files, simulated service ` +
	`processes, one simulated kubelet per host at its defaults). Each Machine: 3 packages (2 components with a service, ` +
	`1 system setting), driftCheckInterval at its default (5m, not scaled). At rest = after every Machine converged and ` +
	`a settle period. Temporal figures come from the histories of a sample of Machine workflows (every run overlapping ` +
	`the window, events counted by their time): actions = workflow runs started (incl. continue-as-new) + activities ` +
	`scheduled (+ retries) + timers started + signals received + search-attribute upserts; bytes = protobuf size of ` +
	`the events. kok API requests = the business API server's audit log for user kok-operator (the machine operator ` +
	`and every kube activity it serves); all API requests = apiserver_request_total deltas (includes the simulated ` +
	`kubelets and the bench). RSS = VmRSS of each kok-manager process, max over the window. Edit -> converged = ` +
	`fleet-setting 1.0.0 -> 1.1.0 on a few Machines, 10 at a time, to status observed at the new generation, Ready, ` +
	`every component Running at its version. Operator restart = SIGTERM + start of the operator process; signals and ` +
	`activities counted in the sampled histories over the restart window, scaled to N, beside the same window at rest.`

type fleetConfig struct {
	window, restartWindow, budget, total time.Duration
	// windowSet: the window was given; otherwise it follows the Machines' drift interval.
	windowSet, budgetSet bool
	edits, sample        int
}

type fleetReport struct {
	Name    string            `json:"name"`
	When    time.Time         `json:"when"`
	Machine map[string]string `json:"machine"`
	Commit  string            `json:"commit"`
	Goals   map[string]string `json:"goals"`
	Method  string            `json:"method"`
	Runs    []fleetRun        `json:"runs"`
	Cluster map[string]any    `json:"clusterEntity,omitempty"`
}

type fleetRun struct {
	N         int                `json:"n"`
	StoppedAt string             `json:"stoppedAt,omitempty"`
	Why       string             `json:"why,omitempty"`
	Figures   map[string]float64 `json:"figures,omitempty"`
	// Temporal events per machine-hour at rest, by event type.
	EventsPerMachineHour map[string]float64 `json:"eventsPerMachineHour,omitempty"`
	// KokRequests are the operator's API requests per second at rest by "verb resource".
	KokRequestsPerSecond map[string]float64 `json:"kokRequestsPerSecond,omitempty"`
	// AllRequests are every client's API requests per second at rest by "verb resource".
	AllRequestsPerSecond map[string]float64 `json:"allRequestsPerSecond,omitempty"`
	// Restart are the counts over the restart window, fleet-wide (scaled from the sample).
	Restart map[string]float64 `json:"operatorRestart,omitempty"`
	Notes   []string           `json:"notes,omitempty"`
}

func runFleet(b *testing.B, n int, cfg fleetConfig) (r fleetRun) {
	r = fleetRun{N: n, Figures: map[string]float64{}}
	deadline := time.Now().Add(cfg.budget)
	dir := b.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Progress goes to stderr as it happens as well: a benchmark's log is shown only at its end,
	// and truncated.
	logf := func(format string, args ...any) {
		line := fmt.Sprintf("N=%d %s: "+format, append([]any{n, time.Now().UTC().Format("15:04:05")}, args...)...)
		fmt.Fprintln(os.Stderr, line)
		b.Log(line)
	}

	// Two API servers: the meta cluster (the meta manager's) and the business cluster whose
	// audit log records every request the machine operator makes.
	business, operatorCfg := startAPIServer(b, dir, "business", true)
	meta, _ := startAPIServer(b, dir, "meta", false)
	admin := rest.CopyConfig(business.Config)
	admin.QPS, admin.Burst = 200, 400
	scheme, err := harness.NewScheme()
	if err != nil {
		b.Fatal(err)
	}
	c, err := ctrlclient.New(admin, ctrlclient.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	for _, ns := range []string{kokv1.ConditionNamespace} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
	}

	ts := startFleetTemporal(b)
	quiet := sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	tc := ts.NewClientWithOptions(client.Options{Logger: quiet})
	addr, ns := ts.GetFrontendHostPort(), ts.GetDefaultNamespace()
	defineSearchAttributes(ctx, b, tc, ns)
	common := []string{"--temporal-address", addr, "--temporal-namespace", ns, "--metrics-bind-address", "0", "--zap-log-level", "error"}
	metaMgr := startProc(b, dir, "kok-manager-meta", append([]string{
		"--kubeconfig", meta.kubeconfig, "--cluster-name", "meta", "--serve-clusters=true", "--leader-elect=false",
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(harness.FreePort(b)),
	}, common...)...)
	operator := startProc(b, dir, "kok-operator", append([]string{
		"--kubeconfig", operatorCfg, "--cluster-name", "local", "--serve-clusters=false", "--leader-elect=true",
		"--leader-election-namespace", kokv1.ConditionNamespace,
		"--health-probe-bind-address", "127.0.0.1:" + strconv.Itoa(harness.FreePort(b)),
	}, common...)...)

	mpvs, err := fleet.Catalogue(filepath.Join(dir, "packages"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range mpvs {
		if err := c.Create(ctx, &mpvs[i]); err != nil {
			b.Fatal(err)
		}
	}

	// The fleet first (its workers poll, its Nodes register), then the Machines.
	names := fleet.HostNames("node", n)
	upStart := time.Now()
	f, err := fleet.Start(ctx, fleet.Options{Temporal: tc, Kube: business.Config, Root: filepath.Join(dir, "hosts"), Hosts: names,
		// Each host keeps itself at spec with the agent's own local loop, as kok-agent does.
		HostLoop: func(ctx context.Context, a *host.Activities) { host.RunLocalLoop(ctx, a, 90*time.Second) }})
	if err != nil {
		b.Fatal(err)
	}
	defer f.Stop()
	logf("fleet of %d hosts started in %s", n, time.Since(upStart).Round(time.Second))
	r.Figures["fleet_start_s"] = time.Since(upStart).Seconds()
	createStart := time.Now()
	if err := parallel(ctx, 20, names, func(ctx context.Context, name string) error {
		return c.Create(ctx, &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: kokv1.MachineSpec{Packages: fleet.Packages(fleet.SettingVersions[0])}})
	}); err != nil {
		b.Fatal(err)
	}
	logf("%d Machines created in %s", n, time.Since(createStart).Round(time.Second))

	// The window covers whole drift intervals of the Machines as the API defaulted them (the
	// passes are phase-locked when they are not jittered), unless KOK_BENCH_FLEET_WINDOW says.
	var first kokv1.Machine
	if err := c.Get(ctx, ctrlclient.ObjectKey{Name: names[0]}, &first); err != nil {
		b.Fatal(err)
	}
	if d := first.Spec.DriftCheckInterval; d != nil {
		r.Figures["drift_check_interval_s"] = d.Seconds()
		if !cfg.windowSet {
			cfg.window = min(max(2*d.Duration, 10*time.Minute), 15*time.Minute)
		}
	}
	if !cfg.budgetSet {
		// Room for a bring-up beside a longer window.
		deadline = deadline.Add(max(0, cfg.window+cfg.restartWindow+10*time.Minute-cfg.budget))
	}

	// Bring-up: every Machine converged, within what the budget leaves for the measurements.
	upDeadline := deadline.Add(-(cfg.window + cfg.restartWindow + 3*time.Minute))
	for {
		done, err := countConverged(ctx, c, fleet.SettingVersions[0])
		if err != nil {
			logf("list machines: %v", err)
		}
		if done == n {
			break
		}
		if time.Now().After(upDeadline) {
			r.StoppedAt = "bring-up"
			r.Why = fmt.Sprintf("time: %d of %d Machines converged %s after they were created (budget %s per size)", done, n, time.Since(createStart).Round(time.Second), cfg.budget)
			r.Figures["converged_at_stop"] = float64(done)
			r.Figures["operator_exits_by_itself"] = float64(operator.unexpectedExits())
			r.Figures["operator_rss_mib"] = rssMiB(operator.pid())
			r.Figures["meta_manager_rss_mib"] = rssMiB(metaMgr.pid())
			logf("%s", r.Why)
			return r
		}
		logf("bring-up: %d of %d converged; nodes healthy %d; operator exits %d", done, n, f.NodesHealthy(), operator.unexpectedExits())
		sleepCtx(ctx, 10*time.Second)
	}
	r.Figures["bring_up_s"] = time.Since(createStart).Seconds()
	logf("all %d converged in %s", n, time.Since(createStart).Round(time.Second))

	// Settle: the last passes of bring-up finish and the operator's queues drain.
	sleepCtx(ctx, 30*time.Second)

	// At rest.
	sample := sampleNames(names, cfg.sample)
	auditLog := business.auditLog
	before, err := scrapeRequests(ctx, business.Config)
	if err != nil {
		b.Fatal(err)
	}
	opCPU0, metaCPU0 := cpuSeconds(operator.pid()), cpuSeconds(metaMgr.pid())
	t0 := time.Now()
	var opRSS, metaRSS, selfRSS float64
	for time.Since(t0) < cfg.window {
		opRSS, metaRSS, selfRSS = max(opRSS, rssMiB(operator.pid())), max(metaRSS, rssMiB(metaMgr.pid())), max(selfRSS, rssMiB(os.Getpid()))
		sleepCtx(ctx, 10*time.Second)
	}
	t1 := time.Now()
	after, err := scrapeRequests(ctx, business.Config)
	if err != nil {
		b.Fatal(err)
	}
	win := t1.Sub(t0).Seconds()
	r.Figures["window_s"] = win
	r.Figures["operator_rss_mib"] = opRSS
	r.Figures["operator_exits_by_itself"] = float64(operator.unexpectedExits())
	r.Figures["meta_manager_exits_by_itself"] = float64(metaMgr.unexpectedExits())
	r.Figures["meta_manager_rss_mib"] = metaRSS
	r.Figures["bench_process_rss_mib"] = selfRSS
	r.Figures["operator_cpu_cores"] = (cpuSeconds(operator.pid()) - opCPU0) / win
	r.Figures["meta_manager_cpu_cores"] = (cpuSeconds(metaMgr.pid()) - metaCPU0) / win
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.Figures["bench_process_heap_inuse_mib"] = float64(ms.HeapInuse) / (1 << 20)

	hist, err := countHistories(ctx, tc, sample, t0, t1)
	if err != nil {
		b.Fatal(err)
	}
	hours := t1.Sub(t0).Hours() * float64(len(sample))
	r.EventsPerMachineHour = map[string]float64{}
	for k, v := range hist.events {
		r.EventsPerMachineHour[k] = v / hours
	}
	r.Figures["sampled_machines"] = float64(len(sample))
	r.Figures["actions_per_machine_hour"] = hist.actions / hours
	r.Figures["activities_per_machine_hour"] = hist.activities / hours
	r.Figures["history_events_per_machine_hour"] = hist.total / hours
	r.Figures["history_bytes_per_machine_day"] = hist.bytes / hours * 24
	r.Figures["history_bytes_per_day_fleet"] = hist.bytes / hours * 24 * float64(n)
	r.Figures["temporal_actions_per_second_fleet"] = hist.actions / hours * float64(n) / 3600

	kok, err := auditRequests(auditLog, "kok-operator", t0, t1)
	if err != nil {
		b.Fatal(err)
	}
	r.KokRequestsPerSecond = perSecond(kok.byVerb, win)
	r.Figures["kok_requests_per_second"] = kok.total / win
	r.Figures["kok_writes_per_machine_hour"] = kok.writes / (win / 3600) / float64(n)
	r.Figures["kok_writes_per_machine_hour_excl_leader_election"] = kok.writesExclLeases / (win / 3600) / float64(n)
	all := map[string]float64{}
	var allTotal float64
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			all[k] = d
			allTotal += d
		}
	}
	r.AllRequestsPerSecond = perSecond(all, win)
	r.Figures["all_requests_per_second"] = allTotal / win
	logf("at rest: %.2f actions/machine-hour, %.0f B/machine-day, %.2f kok req/s, operator %.0f MiB", r.Figures["actions_per_machine_hour"], r.Figures["history_bytes_per_machine_day"], r.Figures["kok_requests_per_second"], opRSS)

	// Edit -> converged for a few machines while the fleet idles.
	lat := editLatencies(ctx, b, c, sampleNames(names, cfg.edits))
	if len(lat) > 0 {
		r.Figures["edit_to_converged_p50_s"] = percentile(lat, 0.50)
		r.Figures["edit_to_converged_p99_s"] = percentile(lat, 0.99)
		r.Figures["edit_to_converged_max_s"] = percentile(lat, 1)
		r.Figures["edits"] = float64(len(lat))
	}
	logf("edit -> converged p50 %.1fs p99 %.1fs over %d edits", r.Figures["edit_to_converged_p50_s"], r.Figures["edit_to_converged_p99_s"], len(lat))
	sleepCtx(ctx, 30*time.Second)

	// Operator restart: what the restarted operator costs in the next restartWindow.
	t2 := time.Now()
	operator.restart(b)
	if time.Until(deadline) < cfg.restartWindow {
		r.Notes = append(r.Notes, "restart window shortened to stay within the budget")
	}
	rw := min(cfg.restartWindow, time.Until(deadline))
	sleepCtx(ctx, rw)
	t3 := time.Now()
	rh, err := countHistories(ctx, tc, sample, t2, t3)
	if err != nil {
		b.Fatal(err)
	}
	scale := float64(n) / float64(len(sample))
	restAct := hist.activities / t1.Sub(t0).Seconds() * t3.Sub(t2).Seconds()
	restSig := hist.events["WorkflowExecutionSignaled"] / t1.Sub(t0).Seconds() * t3.Sub(t2).Seconds()
	kr, err := auditRequests(auditLog, "kok-operator", t2, t3)
	if err != nil {
		b.Fatal(err)
	}
	r.Restart = map[string]float64{
		"window_s":                    t3.Sub(t2).Seconds(),
		"signals":                     rh.events["WorkflowExecutionSignaled"] * scale,
		"activities":                  rh.activities * scale,
		"signals_same_window_at_rest": restSig * scale,
		"activities_same_window_rest": restAct * scale,
		"kok_requests":                kr.total,
		"kok_writes":                  kr.writes,
		"operator_rss_mib_after":      rssMiB(operator.pid()),
	}
	for k, v := range rh.events {
		r.Restart["events_"+k] = v * scale
	}
	for k, v := range kr.byVerb {
		r.Restart["kok_requests_"+k] = v
	}
	logf("operator restart: %.0f signals, %.0f activities in %s (at rest: %.0f, %.0f)", r.Restart["signals"], r.Restart["activities"], rw.Round(time.Second), restSig*scale, restAct*scale)
	return r
}

// --- parts ---

type apiServer struct {
	Config     *rest.Config
	kubeconfig string
	auditLog   string
}

// startAPIServer starts kube-apiserver and etcd; with audit it logs, at Metadata level, every
// request of user kok-operator and returns a kubeconfig for that user (cluster-admin).
func startAPIServer(b *testing.B, dir, name string, audit bool) (*apiServer, string) {
	bins, err := harness.K8sBinDir()
	if err != nil {
		b.Fatal(err)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	scheme, err := harness.NewScheme()
	if err != nil {
		b.Fatal(err)
	}
	te := &envtest.Environment{BinaryAssetsDirectory: bins, CRDDirectoryPaths: []string{filepath.Join(root, "crds")}, ErrorIfCRDPathMissing: true, Scheme: scheme}
	s := &apiServer{}
	if audit {
		s.auditLog = filepath.Join(dir, name+"-audit.log")
		policy := filepath.Join(dir, name+"-audit-policy.yaml")
		if err := os.WriteFile(policy, []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["kok-operator"]
- level: None
`), 0o644); err != nil {
			b.Fatal(err)
		}
		args := te.ControlPlane.GetAPIServer().Configure()
		args.Set("audit-policy-file", policy)
		args.Set("audit-log-path", s.auditLog)
		args.Set("audit-log-format", "json")
		args.Set("audit-log-mode", "batch")
	}
	cfg, err := te.Start()
	if err != nil {
		b.Fatalf("start %s API server: %v", name, err)
	}
	b.Cleanup(func() { _ = te.Stop() })
	s.Config = cfg
	s.kubeconfig = filepath.Join(dir, name+".kubeconfig")
	if err := os.WriteFile(s.kubeconfig, te.KubeConfig, 0o600); err != nil {
		b.Fatal(err)
	}
	if !audit {
		return s, ""
	}
	u, err := te.AddUser(envtest.User{Name: "kok-operator", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, name+"-operator.kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		b.Fatal(err)
	}
	return s, path
}

// startFleetTemporal starts the in-process Temporal server with the limits one test server needs
// to serve thousands of task queues raised (they protect a shared production frontend).
func startFleetTemporal(b *testing.B) *temporaltest.TestServer {
	dc := dynamicconfig.StaticClient{
		dynamicconfig.FrontendMaxConcurrentLongRunningRequestsPerInstance.Key(): 1_000_000,
		dynamicconfig.FrontendRPS.Key():                                         1_000_000,
		dynamicconfig.FrontendMaxNamespaceRPSPerInstance.Key():                  1_000_000,
		dynamicconfig.MatchingNumTaskqueueReadPartitions.Key():                  1,
		dynamicconfig.MatchingNumTaskqueueWritePartitions.Key():                 1,
	}
	ts := temporaltest.NewServer(temporaltest.WithBaseServerOptions(temporal.WithDynamicConfigClient(dc)))
	b.Cleanup(ts.Stop)
	return ts
}

// defineSearchAttributes defines kok's search attributes (KokCluster, KokKind) in the namespace
// and waits until the frontend accepts a query by them: code that starts workflows with them is
// refused by a namespace that lacks them, and the test server learns of new ones within ~10 s.
func defineSearchAttributes(ctx context.Context, b *testing.B, tc client.Client, ns string) {
	_, err := tc.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: ns,
		SearchAttributes: map[string]enumspb.IndexedValueType{
			kokv1.SearchAttributeCluster: enumspb.INDEXED_VALUE_TYPE_KEYWORD,
			kokv1.SearchAttributeKind:    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		},
	})
	if err != nil {
		b.Fatalf("define search attributes: %v", err)
	}
	query := fmt.Sprintf("%s = 'x' AND %s = 'x'", kokv1.SearchAttributeCluster, kokv1.SearchAttributeKind)
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := tc.WorkflowService().ListWorkflowExecutions(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: ns, PageSize: 1, Query: query})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("search attributes not queryable after a minute: %v", err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// proc is a kok-manager process run the way a Deployment runs it: one that exits by itself
// (a lost leader election under load ends kok-manager) is started again after a second, as
// the kubelet restarts a container, and counted.
type proc struct {
	name, bin, log string
	args           []string
	mu             sync.Mutex
	cmd            *exec.Cmd
	done           chan struct{}
	// stopped: the bench ended it on purpose; exits counts the times it ended by itself.
	stopped bool
	exits   int
	b       *testing.B
}

// unexpectedExits is how many times the process ended by itself so far.
func (p *proc) unexpectedExits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exits
}

func startProc(b *testing.B, dir, name string, args ...string) *proc {
	bin, err := harness.Binary("kok-manager")
	if err != nil {
		b.Fatal(err)
	}
	p := &proc{name: name, bin: bin, log: filepath.Join(dir, name+".log"), args: args, b: b}
	p.start(b)
	b.Cleanup(func() {
		p.stop()
		if b.Failed() {
			if data, err := os.ReadFile(p.log); err == nil {
				b.Logf("--- %s ---\n%s", p.name, tail(data, 8<<10))
			}
		}
	})
	return p
}

func (p *proc) start(b *testing.B) {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", p.name, err)
	}
	done := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.done, p.stopped = cmd, done, false
	p.mu.Unlock()
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
		p.mu.Lock()
		again := !p.stopped && p.cmd == cmd
		if again {
			p.exits++
			p.cmd = nil
		}
		p.mu.Unlock()
		if again {
			fmt.Fprintf(os.Stderr, "%s exited by itself (%v); starting it again\n", p.name, cmd.ProcessState)
			time.Sleep(time.Second) // the restart delay of a crashed container, at its shortest
			p.mu.Lock()
			ended := p.stopped
			p.mu.Unlock()
			if !ended {
				p.start(b)
			}
		}
	}()
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.stopped = nil, true
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func (p *proc) restart(b *testing.B) {
	p.stop()
	p.start(b)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// --- measurements ---

func countConverged(ctx context.Context, c ctrlclient.Client, setting string) (int, error) {
	done := 0
	opts := []ctrlclient.ListOption{ctrlclient.Limit(500)}
	for {
		var list kokv1.MachineList
		if err := c.List(ctx, &list, opts...); err != nil {
			return done, err
		}
		for i := range list.Items {
			if converged(&list.Items[i], setting) {
				done++
			}
		}
		if list.Continue == "" {
			return done, nil
		}
		opts = []ctrlclient.ListOption{ctrlclient.Limit(500), ctrlclient.Continue(list.Continue)}
	}
}

// converged: status observed at the current generation, Ready, every package Running at the
// version the spec names.
func converged(m *kokv1.Machine, setting string) bool {
	if m.Status.ObservedGeneration != m.Generation {
		return false
	}
	if c := meta.FindStatusCondition(m.Status.Conditions, kokv1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
		return false
	}
	want := map[string]string{}
	for _, p := range fleet.Packages(setting) {
		want[p.Name] = p.Version
	}
	for _, comp := range m.Status.Components {
		if want[comp.Name] == comp.Version && comp.Phase == kokv1.ComponentRunning {
			delete(want, comp.Name)
		}
	}
	return len(want) == 0
}

func editLatencies(ctx context.Context, b *testing.B, c ctrlclient.Client, names []string) []time.Duration {
	var mu sync.Mutex
	var out []time.Duration
	want := fleet.SettingVersions[1]
	err := parallel(ctx, 10, names, func(ctx context.Context, name string) error {
		start := time.Now()
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			var m kokv1.Machine
			if err := c.Get(ctx, ctrlclient.ObjectKey{Name: name}, &m); err != nil {
				return err
			}
			m.Spec.Packages = fleet.Packages(want)
			return c.Update(ctx, &m)
		})
		if err != nil {
			return err
		}
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			var m kokv1.Machine
			if err := c.Get(ctx, ctrlclient.ObjectKey{Name: name}, &m); err == nil && converged(&m, want) {
				mu.Lock()
				out = append(out, time.Since(start))
				mu.Unlock()
				return nil
			}
			sleepCtx(ctx, 200*time.Millisecond)
		}
		return fmt.Errorf("machine %s: not converged to %s within 3m", name, want)
	})
	if err != nil {
		b.Logf("edits: %v", err)
	}
	return out
}

type histCount struct {
	events                            map[string]float64
	total, bytes, actions, activities float64
}

// countHistories counts, over the runs of each sampled Machine workflow that overlap [from, to),
// the events whose time falls in it.
func countHistories(ctx context.Context, tc client.Client, names []string, from, to time.Time) (histCount, error) {
	ids := make([]string, len(names))
	for i, n := range names {
		ids[i] = machinewf.WorkflowID("local", n)
	}
	return countWorkflowHistories(ctx, tc, ids, from, to)
}

// countWorkflowHistories counts, over the runs of each workflow that overlap [from, to) (the
// chain of continue-as-new runs, newest first), the events whose time falls in it.
func countWorkflowHistories(ctx context.Context, tc client.Client, ids []string, from, to time.Time) (histCount, error) {
	h := histCount{events: map[string]float64{}}
	var mu sync.Mutex
	err := parallel(ctx, 8, ids, func(ctx context.Context, id string) error {
		runID := ""
		for range 1000 {
			var started *historypb.WorkflowExecutionStartedEventAttributes
			var first time.Time
			local := histCount{events: map[string]float64{}}
			it := tc.GetWorkflowHistory(ctx, id, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				e, err := it.Next()
				if err != nil {
					return fmt.Errorf("history of %s: %w", id, err)
				}
				if a := e.GetWorkflowExecutionStartedEventAttributes(); a != nil {
					started, first = a, e.GetEventTime().AsTime()
				}
				at := e.GetEventTime().AsTime()
				if at.Before(from) || !at.Before(to) {
					continue
				}
				// The proto enum name (EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), in CamelCase.
				name := camel(strings.TrimPrefix(enumspb.EventType_name[int32(e.GetEventType())], "EVENT_TYPE_"))
				local.events[name]++
				local.total++
				local.bytes += float64(proto.Size(e))
				switch e.GetEventType() {
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
					local.actions++
					local.activities++
				case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
					if a := e.GetActivityTaskStartedEventAttributes().GetAttempt(); a > 1 {
						local.actions += float64(a - 1)
						local.activities += float64(a - 1)
					}
				case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, enumspb.EVENT_TYPE_TIMER_STARTED,
					enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
					enumspb.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED, enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
					local.actions++
				}
			}
			mu.Lock()
			for k, v := range local.events {
				h.events[k] += v
			}
			h.total += local.total
			h.bytes += local.bytes
			h.actions += local.actions
			h.activities += local.activities
			mu.Unlock()
			if started == nil || started.GetContinuedExecutionRunId() == "" || first.Before(from) {
				return nil
			}
			runID = started.GetContinuedExecutionRunId()
		}
		return nil
	})
	return h, err
}

// camel turns ACTIVITY_TASK_SCHEDULED into ActivityTaskScheduled.
func camel(s string) string {
	var sb strings.Builder
	for _, w := range strings.Split(strings.ToLower(s), "_") {
		if w != "" {
			sb.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return sb.String()
}

type auditCount struct {
	byVerb                          map[string]float64
	total, writes, writesExclLeases float64
}

// auditRequests counts user's requests in the audit log completed in [from, to), by verb and
// resource (watches are counted when they start).
func auditRequests(path, user string, from, to time.Time) (auditCount, error) {
	ac := auditCount{byVerb: map[string]float64{}}
	f, err := os.Open(path)
	if err != nil {
		return ac, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e struct {
			Stage          string    `json:"stage"`
			Verb           string    `json:"verb"`
			StageTimestamp time.Time `json:"stageTimestamp"`
			User           struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef *struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue
		}
		if e.User.Username != user || e.StageTimestamp.Before(from) || !e.StageTimestamp.Before(to) {
			continue
		}
		if (e.Verb == "watch") != (e.Stage == "ResponseStarted") || (e.Stage != "ResponseComplete" && e.Stage != "ResponseStarted") {
			continue
		}
		res := "-"
		if e.ObjectRef != nil {
			res = e.ObjectRef.Resource
			if e.ObjectRef.Subresource != "" {
				res += "/" + e.ObjectRef.Subresource
			}
		}
		ac.byVerb[e.Verb+" "+res]++
		ac.total++
		switch e.Verb {
		case "create", "update", "patch", "delete", "deletecollection":
			ac.writes++
			if res != "leases" {
				ac.writesExclLeases++
			}
		}
	}
	return ac, sc.Err()
}

// scrapeRequests reads apiserver_request_total, summed over codes, by "verb resource".
func scrapeRequests(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		i := strings.LastIndexByte(line, '}')
		v, err := strconv.ParseFloat(strings.TrimSpace(line[i+1:]), 64)
		if err != nil {
			continue
		}
		labels := map[string]string{}
		for _, kv := range strings.Split(line[len("apiserver_request_total{"):i], ",") {
			if k, val, ok := strings.Cut(kv, "="); ok {
				labels[k] = strings.Trim(val, `"`)
			}
		}
		res := labels["resource"]
		if res == "" {
			res = "-"
		}
		if s := labels["subresource"]; s != "" {
			res += "/" + s
		}
		out[strings.ToLower(labels["verb"])+" "+res] += v
	}
	return out, nil
}

func perSecond(m map[string]float64, secs float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = round3(v / secs)
	}
	return out
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func rssMiB(pid int) float64 {
	if pid == 0 {
		return 0
	}
	v, err := RSSBytes(pid)
	if err != nil {
		return 0
	}
	return float64(v) / (1 << 20)
}

// cpuSeconds is the process's user+system CPU time so far.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

func percentile(d []time.Duration, p float64) float64 {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p+0.999999) - 1
	i = max(0, min(i, len(s)-1))
	return s[i].Seconds()
}

// --- helpers ---

// sampleNames picks k names spread evenly over names.
func sampleNames(names []string, k int) []string {
	if k >= len(names) {
		return names
	}
	out := make([]string, 0, k)
	for i := range k {
		out = append(out, names[i*len(names)/k])
	}
	return out
}

// parallel runs fn for every item, width at a time, and returns the first error.
func parallel(ctx context.Context, width int, items []string, fn func(context.Context, string) error) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, width)
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func envInts(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a comma-separated list of positive integers", name, v)
		}
		out = append(out, n)
	}
	return out
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		b.Fatalf("%s=%q: want a positive duration such as 10m", name, v)
	}
	return d
}

func machineDescription() map[string]string {
	out := map[string]string{"cores": strconv.Itoa(runtime.NumCPU()), "goos": runtime.GOOS, "goarch": runtime.GOARCH}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		out["uname"] = unix.ByteSliceToString(uts.Sysname[:]) + " " + unix.ByteSliceToString(uts.Release[:]) + " " + unix.ByteSliceToString(uts.Machine[:])
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(data), "\n"); ok {
			out["memory"] = strings.Join(strings.Fields(strings.TrimPrefix(line, "MemTotal:")), " ")
		}
	}
	return out
}

func gitCommit() string {
	root, err := harness.RepoRoot()
	if err != nil {
		return ""
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
