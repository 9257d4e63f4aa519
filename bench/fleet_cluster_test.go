package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kokv1 "kok.dev/api/v1alpha1"
	clustercatalogue "kok.dev/dev/catalogue/cluster"
	"kok.dev/tests/harness"
	clusterwf "kok.dev/workflows/cluster"
)

// BenchmarkFleetClusterAtRest measures what one Cluster entity costs at rest: one real
// 1-master Cluster (process provider: etcd, kube-apiserver, controller-manager, scheduler and
// the machine operator as processes of one simulated host, real kok-manager and kok-agent),
// Running and untouched for KOK_BENCH_CLUSTER_WINDOW (default 10m). Its workflow's history over
// the window (every run of Cluster/<name>, events by their time) gives events, actions and
// bytes per cluster-hour, projected linearly to 3,000 clusters: the Cluster workflow's rest
// cost does not depend on how many others run (each is its own entity), so the projection is
// the per-cluster figure times 3,000 — what it leaves out is whether one Temporal cluster and
// one meta manager keep up with that rate, which this machine cannot show.
//
// Writes bench/results/fleet-cluster-rest.json.
func BenchmarkFleetClusterAtRest(b *testing.B) {
	window := envDuration(b, "KOK_BENCH_CLUSTER_WINDOW", 10*time.Minute)
	const projected = 3000
	hosts := []string{"m1"}
	env := harness.Start(b, harness.Options{Manager: true, Agents: hosts})
	ctx := context.Background()
	bins, err := harness.K8sBinDir()
	if err != nil {
		b.Fatal(err)
	}
	manager, err := harness.Binary("kok-manager")
	if err != nil {
		b.Fatal(err)
	}
	cpvs, err := clustercatalogue.Build(filepath.Join(env.Dir, "cluster-packages"), map[string]string{benchNewRelease: bins}, manager)
	if err != nil {
		b.Fatal(err)
	}
	for i := range cpvs {
		if err := env.Client.Create(ctx, &cpvs[i]); err != nil {
			b.Fatal(err)
		}
	}
	lb := &lifecycleBench{b: b, env: env, port: 25000}
	port := lb.freePorts(hosts)
	name := "rest-1"
	c := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kokv1.ClusterSpec{
			PackageVersion: benchNewRelease,
			Masters:        kokv1.ClusterMasters{Count: 1, Hosts: hosts},
			Network:        kokv1.ClusterNetwork{APIServerPort: int32(port)},
		},
	}
	if err := env.Client.Create(ctx, c); err != nil {
		b.Fatal(err)
	}
	if why := lb.waitRunning(name, benchNewRelease, 8*time.Minute); why != "" {
		b.Fatalf("create rolled back: %s", why)
	}
	// Settle: the create's last steps and first health passes are not rest.
	sleepCtx(ctx, time.Minute)
	t0 := time.Now()
	var mgrRSS float64
	for time.Since(t0) < window {
		mgrRSS = max(mgrRSS, rssMiB(env.Manager.PID()))
		sleepCtx(ctx, 10*time.Second)
	}
	t1 := time.Now()
	h, err := countWorkflowHistories(ctx, env.TemporalClient, []string{clusterwf.WorkflowID(name)}, t0, t1)
	if err != nil {
		b.Fatal(err)
	}
	hours := t1.Sub(t0).Hours()
	out := map[string]any{
		"name":    "fleet-cluster-rest",
		"when":    time.Now().UTC().Truncate(time.Second),
		"machine": machineDescription(),
		"commit":  gitCommit(),
		"method": fmt.Sprintf("One real 1-master Cluster (process provider; meta API server, in-process Temporal, kok-manager and "+
			"kok-agent processes, no payload codec) Running and untouched for %s after a 1-minute settle. Counted: every event of the "+
			"runs of workflow %s in the window, by event time (children: none run at rest). actions = runs started + activities "+
			"scheduled (+ retries) + timers + signals + search-attribute upserts; bytes = protobuf size of the events. Projection "+
			"to %d clusters = per-cluster figure x %d (fallback allowed by the brief: the machine cannot hold thousands of real "+
			"control planes).", window, clusterwf.WorkflowID(name), projected, projected),
		"figures": map[string]float64{
			"window_s":                         t1.Sub(t0).Seconds(),
			"events_per_cluster_hour":          h.total / hours,
			"actions_per_cluster_hour":         h.actions / hours,
			"activities_per_cluster_hour":      h.activities / hours,
			"history_bytes_per_cluster_day":    h.bytes / hours * 24,
			"projected_3000_actions_per_s":     h.actions / hours * projected / 3600,
			"projected_3000_history_gb_day":    h.bytes / hours * 24 * projected / 1e9,
			"projected_3000_events_per_s":      h.total / hours * projected / 3600,
			"meta_manager_rss_mib_one_cluster": mgrRSS,
		},
		"eventsPerClusterHour": perSecond(h.events, hours),
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s", data)
	if dir := os.Getenv("KOK_BENCH_RESULTS"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "fleet-cluster-rest.json"), append(data, '\n'), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}
