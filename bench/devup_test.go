package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"kok.dev/dev/devenv"
	"kok.dev/dev/simnode/catalogue"
	"kok.dev/internal/manifest"
	"kok.dev/tests/harness"
)

// BenchmarkDevUp measures `kok dev up` (devenv.Up, what the command runs) with its default
// shape: 1 master and 3 worker hosts, both control-plane releases, the demo cluster, its
// nodes and its Deployment. Binaries are built beforehand, as `make run` does.
//
// Figures: first_start_to_ready (an empty state directory: the catalogue is packed, the
// Cluster and Machine workflows create everything) with its slowest steps; restart_to_ready
// min/median/max over restarts on the same state (the "warm start": nothing is
// recreated, the agents start their services again); stop min/median/max.
func BenchmarkDevUp(b *testing.B) {
	const restarts = 3
	cfg := benchDevConfig(b)

	b.ResetTimer()
	r, err := devenv.Up(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	if r.DemoErr != nil {
		_ = r.Stop()
		b.Fatalf("the demo did not come up: %v", r.DemoErr)
	}
	first := r.State
	var stops, warm []time.Duration
	var last devenv.State
	for i := 0; ; i++ {
		start := time.Now()
		if err := r.Stop(); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, time.Since(start))
		if i == restarts {
			break
		}
		if r, err = devenv.Up(context.Background(), cfg); err != nil {
			b.Fatal(err)
		}
		if r.DemoErr != nil {
			_ = r.Stop()
			b.Fatalf("the demo did not come back: %v", r.DemoErr)
		}
		warm = append(warm, time.Duration(r.State.ReadySeconds*float64(time.Second)))
		last = r.State
	}
	b.StopTimer()

	res := Result{
		Name: "devup",
		Figures: map[string]float64{
			"first_start_to_ready_s":            first.ReadySeconds,
			"first_start_pack_catalogue_s":      stepSeconds(b, first, "control-plane catalogue"),
			"first_start_create_cluster_s":      stepSeconds(b, first, "demo cluster"),
			"first_start_nodes_ready_s":         stepSeconds(b, first, "demo nodes"),
			"restart_hosts_and_control_plane_s": stepSeconds(b, last, "simulated hosts"),
		},
		Units: map[string]string{"_s": "seconds"},
		Notes: fmt.Sprintf("devenv.Up with 1 master, 3 workers, releases %s; ready = every step done, "+
			"the demo's nodes Ready and schedulable with Leases renewed since the start, its Deployment available; "+
			"%d restarts on the same state; stop = Stop() until every process has exited", strings.Join(cfg.ClusterVersions, " and "), restarts),
	}
	lo, med, hi := Summary(warm)
	res.Figures["restart_to_ready_min_s"], res.Figures["restart_to_ready_median_s"], res.Figures["restart_to_ready_max_s"] = lo, med, hi
	lo, med, hi = Summary(stops)
	res.Figures["stop_min_s"], res.Figures["stop_median_s"], res.Figures["stop_max_s"] = lo, med, hi
	for k, v := range res.Figures {
		b.ReportMetric(v, k)
	}
	if path, err := Write(res); err != nil {
		b.Fatal(err)
	} else if path != "" {
		b.Logf("figures written to %s", path)
	}
}

func stepSeconds(b *testing.B, s devenv.State, prefix string) float64 {
	for _, st := range s.Steps {
		if strings.HasPrefix(st.Step, prefix) {
			return st.Seconds
		}
	}
	b.Fatalf("no step %q in %+v", prefix, s.Steps)
	return 0
}

// benchDevConfig is `kok dev up`'s default configuration on a state directory and ports of
// the benchmark's own.
func benchDevConfig(b *testing.B) devenv.Config {
	b.Helper()
	repo, err := harness.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bins, err := harness.K8sBinDir()
	if err != nil {
		b.Fatal(err)
	}
	cfg := devenv.DefaultConfig()
	dir := b.TempDir()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.K8sBins = bins
	cfg.CRDDir = filepath.Join(repo, "crds")
	cfg.KwokBin = filepath.Join(repo, "bin/tools/kwok-v0.8.0")
	cfg.KwokStages = filepath.Join(repo, "deploy/kwok/stages.yaml")
	if _, err := os.Stat(cfg.KwokBin); err != nil {
		b.Fatalf("kwok is not built (%v): run `make kwok`", err)
	}
	if cfg.ManagerBin, err = harness.Binary("kok-manager"); err != nil {
		b.Fatal(err)
	}
	if cfg.AgentBin, err = harness.Binary("kok-agent"); err != nil {
		b.Fatal(err)
	}
	cfg.ClusterVersions = []string{"v1.36.3", harness.KubeVersion}
	if _, err := harness.K8sBinDirFor("v1.36.3"); err != nil {
		b.Logf("only %s: %v", harness.KubeVersion, err)
		cfg.ClusterVersions = []string{harness.KubeVersion}
	}
	cfg.NodePackages = filepath.Join(dir, "node-packages")
	mpvs, err := catalogue.Build(cfg.NodePackages, "")
	if err != nil {
		b.Fatal(err)
	}
	docs := make([]manifest.Doc, 0, len(mpvs))
	for _, m := range mpvs {
		docs = append(docs, manifest.Doc{APIVersion: m.APIVersion, Kind: m.Kind, Name: m.Name, Spec: m.Spec})
	}
	if err := manifest.Write(filepath.Join(cfg.NodePackages, "catalogue.yaml"), "node packages of BenchmarkDevUp", docs); err != nil {
		b.Fatal(err)
	}
	cfg.Progress = benchLog{b}

	ports := []*int{&cfg.TemporalPort, &cfg.UIPort, &cfg.CodecPort, &cfg.EtcdPort, &cfg.APIServerPort, &cfg.ControllerManagerPort,
		&cfg.ManagerProbePort, &cfg.ManagerMetricsPort, &cfg.AgentMetricsPort, &cfg.KwokPort}
	for _, p := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = ln.Close() }()
		*p = ln.Addr().(*net.TCPAddr).Port
	}
	cfg.DemoAPIServerPort = freeRun(b, "127.0.0.2", 7)
	return cfg
}

// freeRun finds n free ports in a row on ip, below the kernel's ephemeral range.
func freeRun(b *testing.B, ip string, n int) int {
	for range 100 {
		p := 20000 + rand.IntN(12000)
		free := true
		for i := range n {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(p+i)))
			if err != nil {
				free = false
				break
			}
			_ = ln.Close()
		}
		if free {
			return p
		}
	}
	b.Fatalf("no %d free ports in a row on %s", n, ip)
	return 0
}

type benchLog struct{ b *testing.B }

func (l benchLog) Write(p []byte) (int, error) {
	l.b.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
