package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/dev/simnode/catalogue"
	"kok.dev/tests/harness"
)

// BenchmarkMachineConverge measures, on real processes, the time from a Machine spec edit to its
// host converged (local installer: download, verify, unpack, start, health check, status), and
// the agent's resident memory when idle.
//
// Figures: create_to_ready (3 packages on a fresh host), edit_to_converged min/median/max over
// upgrades and downgrades of one package, agent_rss_idle.
func BenchmarkMachineConverge(b *testing.B) {
	const edits = 6
	env := harness.Start(b, harness.Options{Manager: true, Agents: []string{"bench-1"}})
	ctx := context.Background()
	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kokv1.ConditionNamespace}}); err != nil {
		b.Fatal(err)
	}
	mpvs, err := catalogue.Build(filepath.Join(env.Dir, "packages"), "")
	if err != nil {
		b.Fatal(err)
	}
	for i := range mpvs {
		if err := c.Create(ctx, &mpvs[i]); err != nil {
			b.Fatal(err)
		}
	}
	pkgs := func(logCollector string) []kokv1.PackageRef {
		return []kokv1.PackageRef{{Name: "container-runtime", Version: "1.7.0"}, {Name: "kubelet", Version: "1.37.2"}, {Name: "log-collector", Version: logCollector}}
	}

	b.ResetTimer()
	start := time.Now()
	m := &kokv1.Machine{ObjectMeta: metav1.ObjectMeta{Name: "bench-1"}, Spec: kokv1.MachineSpec{Packages: pkgs("1.0.0")}}
	if err := c.Create(ctx, m); err != nil {
		b.Fatal(err)
	}
	waitConverged(b, c, "bench-1", "1.0.0")
	createToReady := time.Since(start)

	var samples []time.Duration
	versions := []string{"1.1.0", "1.0.0"}
	for i := range edits {
		want := versions[i%2]
		start := time.Now()
		// Status writes share the resourceVersion, so a spec edit retries on conflict.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := c.Get(ctx, client.ObjectKey{Name: "bench-1"}, m); err != nil {
				return err
			}
			m.Spec.Packages = pkgs(want)
			return c.Update(ctx, m)
		})
		if err != nil {
			b.Fatal(err)
		}
		waitConverged(b, c, "bench-1", want)
		samples = append(samples, time.Since(start))
	}
	b.StopTimer()

	// Idle memory: the agent with its services up and nothing to do, sampled for a few seconds.
	var rss int64
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for range 10 {
		<-tick.C
		v, err := RSSBytes(env.Agents["bench-1"].PID())
		if err != nil {
			b.Fatal(err)
		}
		rss = max(rss, v)
	}

	lo, med, hi := Summary(samples)
	r := Result{
		Name: "machine-converge",
		Figures: map[string]float64{
			"create_to_ready_s":          createToReady.Seconds(),
			"edit_to_converged_min_s":    lo,
			"edit_to_converged_median_s": med,
			"edit_to_converged_max_s":    hi,
			"agent_rss_idle_mib":         float64(rss) / (1 << 20),
		},
		Units: map[string]string{"_s": "seconds", "_mib": "MiB"},
		Notes: fmt.Sprintf("%d edits (upgrade/downgrade of log-collector, local installer) on one simulated host; "+
			"each includes the agent's 1 s stay-up check of the restarted service and the health check; "+
			"converged = status observed at the new generation with every package Running and Ready", edits),
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

func waitConverged(b *testing.B, c client.Client, name, logCollector string) {
	b.Helper()
	harness.Eventually(b, 2*time.Minute, func(ctx context.Context) error {
		var m kokv1.Machine
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &m); err != nil {
			return err
		}
		if m.Status.ObservedGeneration != m.Generation {
			return fmt.Errorf("generation %d not observed yet", m.Generation)
		}
		ready := meta.FindStatusCondition(m.Status.Conditions, kokv1.ConditionReady)
		if ready == nil || ready.Status != metav1.ConditionTrue {
			return fmt.Errorf("not ready")
		}
		for _, comp := range m.Status.Components {
			if comp.Name == "log-collector" && comp.Version == logCollector && comp.Phase == kokv1.ComponentRunning {
				return nil
			}
		}
		return fmt.Errorf("log-collector not at %s", logCollector)
	})
}
