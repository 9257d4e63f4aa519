package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/tests/harness"
	clusterwf "kok.dev/workflows/cluster"
)

// BenchmarkManagerTwentyClusters measures kok-manager (a real process, against envtest's API
// server and an in-process Temporal) bringing up twenty Clusters of provider kok at once, and
// its resident memory before, during and after: the meta cluster runs their workloads through
// the real kube-controller-manager and kube-scheduler, with kwok as the kubelets of three fake
// nodes (harness.RunWorkloads), so every pod becomes Running and Ready and no container runs.
//
// Go's heap is not visible from outside the process, so memory is VmRSS, sampled every 250 ms:
// with the release created and no Cluster (baseline), while the twenty are created (max), and
// for 10 s with all twenty Running while each entity workflow checks its workloads every
// health.checkInterval (idle). The count of those checks in the idle window is recorded too, so
// the idle figure is known to be under that load.
//
// Figures: create_to_all_running (first create call to the last Cluster seen Running with all
// masters ready, polled every 100 ms), create_to_running min/median/max per Cluster (from its
// own create call), manager RSS baseline/creating/idle, RSS per Cluster ((idle median -
// baseline median) / 20), the health checks in the idle window and the 1-minute load average
// before the run (the machine has 2 cores and other work runs on it).
func BenchmarkManagerTwentyClusters(b *testing.B) {
	const (
		clusters      = 20
		masters       = 3
		release       = harness.KubeVersion
		checkInterval = 5 * time.Second // the API's minimum: two checks per Cluster in the idle window
		baselineFor   = 5 * time.Second
		idleFor       = 10 * time.Second
		sampleEvery   = 250 * time.Millisecond
	)
	load := loadAverage()
	env := harness.Start(b, harness.Options{Manager: true})
	poll := harness.RunWorkloads(b, env)
	ctx := context.Background()
	c := env.Client
	if err := c.Create(ctx, harness.FakeRelease(release, "a")); err != nil {
		b.Fatal(err)
	}
	pid := env.Manager.PID()

	// 1. Baseline: the manager up, watching, with nothing to run.
	baseline := recordRSS(pid, sampleEvery)
	<-time.After(baselineFor)
	baselineRSS := baseline.stop(b)

	// 2. Twenty Clusters at once; each is timed from its own create call to Running.
	names := make([]string, clusters)
	created := map[string]time.Time{}
	b.ResetTimer()
	start := time.Now()
	creating := recordRSS(pid, sampleEvery)
	for i := range names {
		names[i] = fmt.Sprintf("mgr-%02d", i+1)
		err := c.Create(ctx, &kokv1.Cluster{
			ObjectMeta: metav1.ObjectMeta{Name: names[i]},
			Spec: kokv1.ClusterSpec{
				PackageVersion: release, Provider: kokv1.ProviderKok, Masters: kokv1.ClusterMasters{Count: masters},
				Health: kokv1.ClusterHealth{CheckInterval: &metav1.Duration{Duration: checkInterval}},
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		created[names[i]] = time.Now()
	}
	running := map[string]time.Duration{}
	poll(10*time.Minute, func(ctx context.Context) error {
		var list kokv1.ClusterList
		if err := c.List(ctx, &list); err != nil {
			return err
		}
		at := time.Now()
		var waiting []string
		for _, cl := range list.Items {
			st := cl.Status
			if _, ok := running[cl.Name]; ok {
				continue
			}
			if st.Phase == kokv1.ClusterRunning && st.CurrentPackageVersion == release && st.ReadyMasters == masters {
				running[cl.Name] = at.Sub(created[cl.Name])
				continue
			}
			waiting = append(waiting, fmt.Sprintf("%s (phase %q, ready %d, operation %+v)", cl.Name, st.Phase, st.ReadyMasters, st.Operation))
		}
		if len(running) < clusters {
			return fmt.Errorf("%d of %d Running; waiting for %s", len(running), clusters, strings.Join(waiting, ", "))
		}
		return nil
	})
	allRunning := time.Since(start)
	creatingRSS := creating.stop(b)
	b.StopTimer()
	var pods corev1.PodList
	if err := c.List(ctx, &pods); err != nil {
		b.Fatal(err)
	}

	// 3. Idle: twenty Running, their entity workflows checking them every checkInterval.
	idleFrom := time.Now()
	idle := recordRSS(pid, sampleEvery)
	<-time.After(idleFor)
	idleRSS := idle.stop(b)
	checks := statusChecks(b, env, names, idleFrom, time.Now())
	if checks == 0 {
		b.Fatalf("no health check ran in the %s idle window: the idle figure would not be under load", idleFor)
	}

	perCluster := make([]time.Duration, 0, clusters)
	for _, d := range running {
		perCluster = append(perCluster, d)
	}
	lo, med, hi := Summary(perCluster)
	baseMed, baseMax := medianMaxMiB(baselineRSS)
	_, createMax := medianMaxMiB(creatingRSS)
	idleMed, idleMax := medianMaxMiB(idleRSS)
	r := Result{
		Name: "manager-twenty-clusters",
		Figures: map[string]float64{
			"create_to_all_running_s":         allRunning.Seconds(),
			"create_to_running_min_s":         lo,
			"create_to_running_median_s":      med,
			"create_to_running_max_s":         hi,
			"manager_rss_baseline_median_mib": baseMed,
			"manager_rss_baseline_max_mib":    baseMax,
			"manager_rss_creating_max_mib":    createMax,
			"manager_rss_idle_median_mib":     idleMed,
			"manager_rss_idle_max_mib":        idleMax,
			"manager_rss_per_cluster_mib":     (idleMed - baseMed) / clusters,
			"health_checks_idle_count":        float64(checks),
			"load_average_1m_before":          load,
		},
		Units: map[string]string{"_s": "seconds", "_mib": "MiB", "_count": "count"},
		Notes: fmt.Sprintf("%d Clusters of provider kok, %d masters each (%d pods on kwok's %d fake nodes), release %s with fake digest-pinned images, "+
			"created back to back; health.checkInterval %s; kok-manager RSS (VmRSS) every %s: baseline %s before any Cluster, "+
			"creating until all Running, idle %s after; one kok-manager, no payload codec",
			clusters, masters, len(pods.Items), harness.WorkloadNodes, release, checkInterval, sampleEvery, baselineFor, idleFor),
	}
	for k, v := range r.Figures {
		b.ReportMetric(v, k)
	}
	if path, err := Write(r); err != nil {
		b.Fatal(err)
	} else if path != "" {
		b.Logf("figures written to %s", path)
	}
}

// statusActivity is the activity an entity workflow of provider kok runs for each health check
// (kok.Activities.ControlPlaneStatus, registered under its method name).
const statusActivity = "ControlPlaneStatus"

// statusChecks counts the health checks the clusters' entity workflows scheduled between from
// and to, read from their histories (the current run of each: with a check every few seconds a
// run lasts far longer than this benchmark before it continues as new).
func statusChecks(b *testing.B, env *harness.Env, clusters []string, from, to time.Time) int {
	b.Helper()
	n := 0
	for _, name := range clusters {
		it := env.TemporalClient.GetWorkflowHistory(context.Background(), clusterwf.WorkflowID(name), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				b.Fatalf("history of %s: %v", name, err)
			}
			at := e.GetEventTime().AsTime()
			if e.GetEventType() == enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED &&
				e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == statusActivity &&
				!at.Before(from) && at.Before(to) {
				n++
			}
		}
	}
	return n
}

// rssRecorder reads a process's VmRSS on a ticker until stopped.
type rssRecorder struct {
	halt    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []int64
	err     error
}

func recordRSS(pid int, every time.Duration) *rssRecorder {
	r := &rssRecorder{halt: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-r.halt:
				return
			case <-tick.C:
			}
			v, err := RSSBytes(pid)
			r.mu.Lock()
			if err != nil {
				r.err = err
				r.mu.Unlock()
				return
			}
			r.samples = append(r.samples, v)
			r.mu.Unlock()
		}
	}()
	return r
}

// stop ends the recording and returns its samples; a failed read (the process died) fails b.
func (r *rssRecorder) stop(b *testing.B) []int64 {
	b.Helper()
	close(r.halt)
	<-r.done
	if r.err != nil {
		b.Fatalf("read kok-manager's RSS: %v", r.err)
	}
	if len(r.samples) == 0 {
		b.Fatal("no RSS sample")
	}
	return r.samples
}

// medianMaxMiB is the median and the maximum of RSS samples, in MiB.
func medianMaxMiB(samples []int64) (median, maximum float64) {
	s := slices.Clone(samples)
	slices.Sort(s)
	return float64(s[len(s)/2]) / (1 << 20), float64(s[len(s)-1]) / (1 << 20)
}

// loadAverage is the 1-minute load average (0 when /proc/loadavg cannot be read).
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(data))[0], 64)
	return v
}
