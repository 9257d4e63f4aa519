package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/activities/host"
	pkiacts "kok.dev/activities/pki"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	clustercatalogue "kok.dev/dev/catalogue/cluster"
	"kok.dev/internal/agent/state"
	"kok.dev/tests/harness"
)

// The releases the upgrade moves between (etcd 3.6.8 -> 3.7.0, Kubernetes v1.36.3 -> v1.37.2;
// the machine operator is the same kok-manager in both, so the upgrade keeps it).
const (
	benchOldRelease = "v1.36.3"
	benchNewRelease = harness.KubeVersion
)

// BenchmarkClusterLifecycle measures, on real processes (meta API server, Temporal, kok-manager,
// one kok-agent per simulated master, the control-plane components built from source), how long
// a Cluster takes to be created and upgraded, each beside its floor: the time the components
// themselves take to start.
//
// Wall time is from the API call (create, or the spec.packageVersion edit) to status phase
// Running at that release with every master ready, polled every 100 ms.
//
// The floor is measured in the same runs, from outside kok: for every component on every master
// a watcher reads the supervisor's pid file every 25 ms (the process's start time comes from
// /proc, to 10 ms) and then polls the component's own health endpoint every 25 ms until it
// answers 200 (etcd /health, kube-apiserver /readyz as the cluster's administrator — what kok's
// Running waits for —, controller-manager and scheduler /healthz, machine operator /healthz).
// A component's cost is from its process start, or from the moment what it depends on was
// healthy if that came later (kok may start the apiserver before etcd has its quorum; the wait
// is etcd's, not the apiserver's), to its first 200. The floor is the sum along the critical
// path of the components' dependencies: etcd (every member started -> every member healthy) ->
// kube-apiserver -> the slowest of controller-manager, scheduler and machine operator, masters
// in parallel for a create and one after another for an upgrade (components the upgrade does not
// change count zero). A perfect orchestrator that started each component the instant its
// dependencies were healthy, and waited for it to be healthy, would take the floor. Not in it:
// PKI, rendering, downloads and unpacking, the agent's 1 s stay-up check per component, the CRD
// install, Temporal round trips and status writes; nor the old processes' graceful stop in an
// upgrade, which is the components' own time too and so is reported beside the floor
// (old_process_stop: every process stopped during the upgrade, from the agent's journal entry
// "unpacked" of the package whose replacement stopped it — the agent writes the configs and
// stops the old process, its dependents first, within milliseconds of it — to the process
// gone; see upgradeStop).
// kok's Running does not wait for the controller-manager, scheduler or operator to be healthy
// (only for their processes to stay up 1 s), while the floor does. An upgrade kok rolls back
// gives no sample; it is counted (rolled_back_n) and its reason logged.
//
// Figures, per scenario (create_1m, create_3m, upgrade_1m_per_master, upgrade_3m_per_master):
// wall, floor and overhead (wall - floor, per sample) medians, every sample, the floor's parts
// (etcd, apiserver, rest), the upgrades' old_process_stop (in all and by component) and
// rolled_back_n,
// and the load average (the machine has 2 cores and other work runs on it).
func BenchmarkClusterLifecycle(b *testing.B) {
	const (
		oneMasterRuns   = 3
		threeMasterRuns = 3
	)
	loadBefore := loadAverage1(b)
	hosts := []string{"m1", "m2", "m3"}
	env := harness.Start(b, harness.Options{Manager: true, Agents: hosts, Codec: true})
	ctx := context.Background()
	newBins, err := harness.K8sBinDir()
	if err != nil {
		b.Fatal(err)
	}
	oldBins, err := harness.K8sBinDirFor(benchOldRelease)
	if err != nil {
		b.Fatal(err)
	}
	manager, err := harness.Binary("kok-manager")
	if err != nil {
		b.Fatal(err)
	}
	cpvs, err := clustercatalogue.Build(filepath.Join(env.Dir, "cluster-packages"),
		map[string]string{benchOldRelease: oldBins, benchNewRelease: newBins}, manager)
	if err != nil {
		b.Fatal(err)
	}
	for i := range cpvs {
		if err := env.Client.Create(ctx, &cpvs[i]); err != nil {
			b.Fatal(err)
		}
	}

	lb := &lifecycleBench{b: b, env: env, port: 24000}
	create1 := &clusterScenario{key: "create_1m"}
	upgrade1 := &clusterScenario{key: "upgrade_1m_per_master"}
	create3 := &clusterScenario{key: "create_3m"}
	upgrade3 := &clusterScenario{key: "upgrade_3m_per_master"}
	b.ResetTimer()
	for i := range oneMasterRuns {
		lb.lifecycle(fmt.Sprintf("b1-%d", i), hosts[:1], create1, upgrade1)
	}
	for i := range threeMasterRuns {
		lb.lifecycle(fmt.Sprintf("b3-%d", i), hosts, create3, upgrade3)
	}
	b.StopTimer()

	r := Result{
		Name:    "cluster-lifecycle",
		Figures: map[string]float64{"load1_before": loadBefore},
		Units:   map[string]string{"_s": "seconds", "_n": "count", "load1": "1-minute load average (2 cores)"},
	}
	for _, s := range []*clusterScenario{create1, create3, upgrade1, upgrade3} {
		s.figures(r.Figures)
	}
	sort.Float64s(lb.loads)
	r.Figures["load1_median"] = lb.loads[len(lb.loads)/2]
	r.Figures["load1_max"] = lb.loads[len(lb.loads)-1]
	r.Notes = fmt.Sprintf("%d create+upgrade(%s -> %s)+delete cycles of a 1-master cluster, then %d of a 3-master one, "+
		"in one environment (meta API server, Temporal, kok-manager, 3 kok-agents; each cluster deleted before the next). "+
		"wall: API call -> status Running at the release with every master ready (100 ms polls); per-master upgrade figures are the "+
		"whole upgrade divided by the masters. floor: the components' own start time, watched from outside kok in the same runs: "+
		"process start (pid file + /proc) -> own health endpoint 200 (25 ms polls; kube-apiserver /readyz), counted from when its "+
		"dependencies were healthy if that was later, summed along etcd (all members started -> all healthy) -> kube-apiserver -> "+
		"slowest of controller-manager/scheduler/machine operator; masters in parallel for create, in turn for upgrade "+
		"(the upgrade keeps the operator: same kok in both releases). overhead = wall - floor per sample, then the median. "+
		"Outside the floor: PKI, render, download and unpack, the agent's 1 s stay-up check per component, CRD install, "+
		"Temporal round trips, status writes, and in upgrades the old processes' graceful stop, reported beside the floor as "+
		"old_process_stop: every process stopped during the upgrade (the agent stops a package's dependents before it, "+
		"in reverse dependency order, and starts them again after), from the agent's journal 'unpacked' of the package "+
		"whose replacement stopped it -> process gone, each process counted from the one stopped before it in the same replacement "+
		"(they stop one after another, so the shares add up to the time spent stopping). In upgrades a component's floor counts from its first process "+
		"started after its new version was unpacked. "+
		"rolled_back_n: upgrades kok itself rolled back (no sample; the reason is in the benchmark log). "+
		"load1 (1-minute load average) was sampled at the start and end of every measured operation; "+
		"other work ran on the 2 cores meanwhile, so the figures are noisy.",
		oneMasterRuns, benchOldRelease, benchNewRelease, threeMasterRuns)
	keys := make([]string, 0, len(r.Figures))
	for k := range r.Figures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.ReportMetric(r.Figures[k], k)
	}
	if path, err := Write(r); err != nil {
		b.Fatal(err)
	} else if path != "" {
		b.Logf("figures written to %s", path)
	}
}

// lifecycleBench runs clusters in one environment.
type lifecycleBench struct {
	b     *testing.B
	env   *harness.Env
	port  int       // next API server port to try; a cluster uses P..P+6
	loads []float64 // 1-minute load average at the start and end of each measured operation
}

// lifecycle creates a cluster at the old release on hosts, upgrades it to the new one, deletes
// it, and adds the create and upgrade samples.
func (lb *lifecycleBench) lifecycle(name string, hosts []string, create, upgrade *clusterScenario) {
	b := lb.b
	ctx := context.Background()
	port := lb.freePorts(hosts)
	clock := newComponentClock(b, lb.env, name, hosts, port)
	defer clock.stop()

	// Create.
	lb.loads = append(lb.loads, loadAverage1(b))
	t0 := time.Now()
	c := &kokv1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: kokv1.ClusterSpec{
			PackageVersion: benchOldRelease,
			Masters:        kokv1.ClusterMasters{Count: int32(len(hosts)), Hosts: hosts},
			Network:        kokv1.ClusterNetwork{APIServerPort: int32(port)},
		},
	}
	if err := lb.env.Client.Create(ctx, c); err != nil {
		b.Fatal(err)
	}
	if why := lb.waitRunning(name, benchOldRelease, 6*time.Minute); why != "" {
		b.Fatalf("%s: create rolled back: %s", name, why)
	}
	wall := time.Since(t0)
	lb.loads = append(lb.loads, loadAverage1(b))
	clock.waitHealthy(t0, true)
	floor, parts, err := clock.createFloor(t0)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: created %d master(s) in %s, floor %s %v", name, len(hosts), wall.Round(time.Millisecond), floor.Round(time.Millisecond), roundAll(parts))
	create.add(wall, floor, parts)

	// Upgrade: spec.packageVersion edited; status writes share the resourceVersion, so retry on
	// conflict.
	lb.loads = append(lb.loads, loadAverage1(b))
	t0 = time.Now()
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := lb.env.Client.Get(ctx, client.ObjectKey{Name: name}, c); err != nil {
			return err
		}
		c.Spec.PackageVersion = benchNewRelease
		return lb.env.Client.Update(ctx, c)
	})
	if err != nil {
		b.Fatal(err)
	}
	rolledBack := lb.waitRunning(name, benchNewRelease, time.Duration(len(hosts))*4*time.Minute)
	wall = time.Since(t0)
	lb.loads = append(lb.loads, loadAverage1(b))
	if rolledBack != "" {
		// kok's own verdict, not the benchmark's: counted, reported, and no sample.
		b.Logf("%s: the upgrade of %d master(s) was rolled back after %s: %s", name, len(hosts), wall.Round(time.Millisecond), rolledBack)
		upgrade.failed++
	} else {
		clock.waitHealthy(t0, false)
		floor, parts, err = clock.upgradeFloor(t0)
		if err != nil {
			b.Fatal(err)
		}
		stop, stops := clock.upgradeStop(t0)
		b.Logf("%s: upgraded %d master(s) in %s, floor %s %v, old processes stopping %s %v",
			name, len(hosts), wall.Round(time.Millisecond), floor.Round(time.Millisecond), roundAll(parts), stop.Round(time.Millisecond), roundAll(stops))
		parts[partStop] = stop
		for comp, d := range stops {
			parts[partStop+"_"+strings.ReplaceAll(comp, "-", "_")] = d
		}
		n := time.Duration(len(hosts))
		for k := range parts {
			parts[k] /= n
		}
		upgrade.add(wall/n, floor/n, parts)
	}

	// Delete, so the next cluster has the machine to itself.
	if err := lb.env.Client.Delete(ctx, c); err != nil {
		b.Fatal(err)
	}
	harness.Eventually(b, 3*time.Minute, func(context.Context) error {
		err := lb.env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &kokv1.Cluster{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("cluster %s still there (%w)", name, err)
	})
}

// waitRunning waits until the cluster is Running at release with every master ready, or until
// it says it rolled the change back (returned: why).
func (lb *lifecycleBench) waitRunning(name, release string, timeout time.Duration) (rolledBack string) {
	lb.b.Helper()
	harness.Eventually(lb.b, timeout, func(context.Context) error {
		// Not the deadline's context: the last answer before it is the one worth reporting.
		var c kokv1.Cluster
		if err := lb.env.Client.Get(context.Background(), client.ObjectKey{Name: name}, &c); err != nil {
			return err
		}
		st := c.Status
		if ready := meta.FindStatusCondition(st.Conditions, "Ready"); ready != nil && ready.Reason == kokv1.ReasonRolledBack &&
			ready.ObservedGeneration == c.Generation {
			rolledBack = ready.Message
			return nil
		}
		if st.Phase != kokv1.ClusterRunning || st.CurrentPackageVersion != release || st.TargetPackageVersion != "" ||
			int(st.ReadyMasters) != len(c.Spec.Masters.Hosts) || st.ObservedGeneration < c.Generation {
			return fmt.Errorf("phase %s current %q target %q ready %d, operation %+v, conditions %+v",
				st.Phase, st.CurrentPackageVersion, st.TargetPackageVersion, st.ReadyMasters, st.Operation, st.Conditions)
		}
		return nil
	})
	return rolledBack
}

// freePorts returns an API server port P with P..P+6 free on every host's address.
func (lb *lifecycleBench) freePorts(hosts []string) int {
	for ; lb.port < 30000; lb.port += 10 {
		ok := true
		for _, h := range hosts {
			for p := lb.port; p <= lb.port+6 && ok; p++ {
				l, err := net.Listen("tcp", net.JoinHostPort(lb.env.Addresses[h], strconv.Itoa(p)))
				if err != nil {
					ok = false
					break
				}
				l.Close()
			}
		}
		if ok {
			p := lb.port
			lb.port += 10
			return p
		}
	}
	lb.b.Fatal("no 7 free ports in a row below 30000")
	return 0
}

// clusterScenario collects the samples of one measured operation.
type clusterScenario struct {
	key           string
	walls, floors []time.Duration
	parts         map[string][]time.Duration
	// failed counts operations kok rolled back (no sample).
	failed int
}

func (s *clusterScenario) add(wall, floor time.Duration, parts map[string]time.Duration) {
	s.walls = append(s.walls, wall)
	s.floors = append(s.floors, floor)
	if s.parts == nil {
		s.parts = map[string][]time.Duration{}
	}
	for k, v := range parts {
		s.parts[k] = append(s.parts[k], v)
	}
}

func (s *clusterScenario) figures(f map[string]float64) {
	var overheads []time.Duration
	for i := range s.walls {
		overheads = append(overheads, s.walls[i]-s.floors[i])
		f[fmt.Sprintf("%s_wall_sample%d_s", s.key, i+1)] = s.walls[i].Seconds()
		f[fmt.Sprintf("%s_floor_sample%d_s", s.key, i+1)] = s.floors[i].Seconds()
	}
	f[s.key+"_samples_n"] = float64(len(s.walls))
	f[s.key+"_rolled_back_n"] = float64(s.failed)
	if len(s.walls) == 0 {
		return
	}
	_, f[s.key+"_wall_median_s"], _ = Summary(s.walls)
	_, f[s.key+"_floor_median_s"], _ = Summary(s.floors)
	_, f[s.key+"_overhead_median_s"], _ = Summary(overheads)
	for k, v := range s.parts {
		name := s.key + "_floor_" + k + "_median_s"
		if strings.HasPrefix(k, partStop) {
			name = s.key + "_old_process_" + k + "_median_s" // beside the floor, not in it
		}
		_, f[name], _ = Summary(v)
	}
}

// componentClock watches one cluster's components on its masters from outside kok: when each
// process started and when its own health endpoint first answered 200 afterwards.
type componentClock struct {
	b       *testing.B
	env     *harness.Env
	cluster string
	hosts   []string
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu   sync.Mutex
	runs map[componentAt][]componentRun
}

// componentAt is one component on one master.
type componentAt struct{ host, comp string }

// componentRun is one process of a component; healthy is zero until its endpoint answered 200,
// exited until it was gone.
type componentRun struct{ started, healthy, exited time.Time }

// The floor's parts, in dependency order.
const (
	partEtcd      = "etcd"
	partAPIServer = "apiserver"
	// partRest is the slowest of controller-manager, scheduler and machine operator.
	partRest = "rest"
	// partStop is not in the floor: the old processes an upgrade replaced, from SIGTERM to gone
	// (partStop_<component>: one component's).
	partStop = "stop"
)

var (
	clusterComponents = []string{process.Etcd, process.KubeAPIServer, process.KubeControllerManager, process.KubeScheduler, process.MachineOperator}
	// restComponents depend on the apiserver only (their packages' DependsOn).
	restComponents = []string{process.KubeControllerManager, process.KubeScheduler, process.MachineOperator}
)

// Watch cadence: fine enough that the floor's resolution (a few polls along the critical
// path) is small beside the seconds measured, coarse enough to cost the 2 cores nothing.
const (
	clockEvery        = 25 * time.Millisecond
	clockProbeTimeout = time.Second
	// procUserHZ is the unit of /proc/<pid>/stat's start time: fixed at 100 by the kernel's ABI.
	procUserHZ = 100
	// procTickSlack covers a start time's truncation to a tick and the boot clock's reading.
	procTickSlack = 100 * time.Millisecond
)

func newComponentClock(b *testing.B, env *harness.Env, cluster string, hosts []string, apiServerPort int) *componentClock {
	ports, err := process.PortsFor(apiServerPort)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &componentClock{b: b, env: env, cluster: cluster, hosts: hosts, cancel: cancel, runs: map[componentAt][]componentRun{}}
	boot := bootClock(b)
	plain := &http.Client{Timeout: clockProbeTimeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		// The controller-manager's and scheduler's self-signed serving certificates, as the
		// agent's own probes accept them.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a local health probe
	}}
	admin := &adminClient{env: env, cluster: cluster}
	for _, h := range hosts {
		ip := env.Addresses[h]
		url := func(scheme string, port int, path string) string {
			return scheme + "://" + net.JoinHostPort(ip, strconv.Itoa(port)) + path
		}
		endpoints := map[string]string{
			process.Etcd:                  url("http", ports.EtcdMetrics, "/health"),
			process.KubeAPIServer:         url("https", ports.APIServer, "/readyz"),
			process.KubeControllerManager: url("https", ports.ControllerManager, "/healthz"),
			process.KubeScheduler:         url("https", ports.Scheduler, "/healthz"),
			process.MachineOperator:       url("http", ports.MachineOperator, "/healthz"),
		}
		probe := func(comp string) func(context.Context) bool {
			if comp == process.KubeAPIServer {
				return func(ctx context.Context) bool { return admin.ready(ctx, endpoints[comp]) }
			}
			return func(ctx context.Context) bool { return probeOK(ctx, plain, endpoints[comp]) }
		}
		for _, comp := range clusterComponents {
			pidFile := filepath.Join(env.HostRoot(h), host.RunDir, process.PackageName(cluster, comp)+".pid")
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.watch(ctx, componentAt{h, comp}, pidFile, boot, probe(comp))
			}()
		}
	}
	return c
}

func (c *componentClock) stop() {
	c.cancel()
	c.wg.Wait()
}

// watch records each new process of in (a pid file naming another process), the first 200 of
// its health endpoint, and when it is gone.
func (c *componentClock) watch(ctx context.Context, in componentAt, pidFile string, boot time.Time, probe func(context.Context) bool) {
	tick := time.NewTicker(clockEvery)
	defer tick.Stop()
	var proc string // the process watched: "<pid> <start ticks>"
	probing, alive := false, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if alive && !procRuns(proc) {
			alive = false
			c.update(in, func(r *componentRun) { r.exited = time.Now() })
		}
		if started, key, ok := readServicePidFile(pidFile, boot); ok && key != proc {
			if alive { // replaced between two ticks
				c.update(in, func(r *componentRun) { r.exited = time.Now() })
			}
			proc, probing, alive = key, true, true
			c.mu.Lock()
			c.runs[in] = append(c.runs[in], componentRun{started: started})
			c.mu.Unlock()
		}
		if probing && probe(ctx) {
			now := time.Now()
			probing = false
			c.update(in, func(r *componentRun) { r.healthy = now })
		}
	}
}

// update changes the last run of in.
func (c *componentClock) update(in componentAt, f func(*componentRun)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.runs[in][len(c.runs[in])-1])
}

// readServicePidFile reads the supervisor's pid file ("<pid> <start time in ticks>") and returns
// the process's start time; the start time is checked against /proc, so a half-written file or
// a process gone meanwhile is not taken for a new one.
func readServicePidFile(path string, boot time.Time) (time.Time, string, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, "", false
	}
	key := strings.TrimSpace(string(data))
	f := strings.Fields(key)
	if len(f) != 2 || !procRuns(key) {
		return time.Time{}, "", false
	}
	ticks, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return time.Time{}, "", false
	}
	return boot.Add(time.Duration(ticks) * time.Second / procUserHZ), key, true
}

// procRuns says whether the process "<pid> <start ticks>" runs: /proc has the pid, with that
// start time (pids are reused), not a zombie.
func procRuns(key string) bool {
	f := strings.Fields(key)
	if len(f) != 2 {
		return false
	}
	stat, err := os.ReadFile("/proc/" + f[0] + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return false
	}
	// Fields after the command name start at field 3 (state); starttime is field 22.
	fields := strings.Fields(string(stat[i+1:]))
	return len(fields) >= 20 && fields[0] != "Z" && fields[19] == f[1]
}

// bootClock is the wall-clock moment of boot on CLOCK_BOOTTIME, the clock /proc start times
// count on; the result keeps Go's monotonic reading, so times derived from it compare with
// time.Now exactly.
func bootClock(b *testing.B) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Now().Add(-time.Duration(ts.Nano()))
}

// since returns the first run of in started at or after t0, the first moment one of the runs
// from then on was healthy (zero: none yet), and how many more runs there were (restarts).
func (c *componentClock) since(in componentAt, t0 time.Time) (started, healthy time.Time, restarts int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.runs[in] {
		if r.started.Before(t0) {
			continue
		}
		if !ok {
			started, ok = r.started, true
		} else {
			restarts++
		}
		if healthy.IsZero() && !r.healthy.IsZero() {
			healthy = r.healthy
		}
	}
	return started, healthy, restarts, ok
}

// waitHealthy waits until every component started since t0 (every component at all when all is
// set) has been healthy, so the floor is complete: kok's Running does not wait for all of them.
func (c *componentClock) waitHealthy(t0 time.Time, all bool) {
	harness.Eventually(c.b, 2*time.Minute, func(context.Context) error {
		for _, h := range c.hosts {
			for _, comp := range clusterComponents {
				_, healthy, _, ok := c.since(componentAt{h, comp}, t0)
				if (ok || all) && healthy.IsZero() {
					return fmt.Errorf("%s on %s not healthy yet (started: %t)", comp, h, ok)
				}
			}
		}
		return nil
	})
}

// componentCost is a component's own start time: from its start, or from when its dependencies were
// healthy if that was later, to its first 200.
func componentCost(started, healthy, depsReady time.Time) time.Duration {
	if depsReady.After(started) {
		started = depsReady
	}
	return max(healthy.Sub(started), 0)
}

// createFloor is the critical path of a create begun at t0: etcd (the last member started -> the
// last member healthy), then on the slowest master its apiserver and the slowest of the rest.
func (c *componentClock) createFloor(t0 time.Time) (time.Duration, map[string]time.Duration, error) {
	var etcdStarted, etcdReady time.Time
	for _, h := range c.hosts {
		started, healthy, restarts, ok := c.since(componentAt{h, process.Etcd}, t0)
		if !ok || healthy.IsZero() {
			return 0, nil, fmt.Errorf("etcd on %s: no healthy run since the create", h)
		}
		c.noteRestarts(h, process.Etcd, restarts)
		etcdStarted, etcdReady = laterOf(etcdStarted, started), laterOf(etcdReady, healthy)
	}
	parts := map[string]time.Duration{partEtcd: etcdReady.Sub(etcdStarted)}
	var path time.Duration
	for _, h := range c.hosts {
		started, apiReady, restarts, ok := c.since(componentAt{h, process.KubeAPIServer}, t0)
		if !ok || apiReady.IsZero() {
			return 0, nil, fmt.Errorf("kube-apiserver on %s: no healthy run since the create", h)
		}
		c.noteRestarts(h, process.KubeAPIServer, restarts)
		api := componentCost(started, apiReady, etcdReady)
		var slowest time.Duration
		for _, comp := range restComponents {
			started, healthy, restarts, ok := c.since(componentAt{h, comp}, t0)
			if !ok || healthy.IsZero() {
				return 0, nil, fmt.Errorf("%s on %s: no healthy run since the create", comp, h)
			}
			c.noteRestarts(h, comp, restarts)
			slowest = max(slowest, componentCost(started, healthy, apiReady))
		}
		if api+slowest > path {
			path, parts[partAPIServer], parts[partRest] = api+slowest, api, slowest
		}
	}
	return parts[partEtcd] + path, parts, nil
}

// upgradeFloor is the critical path of an upgrade begun at t0: master after master, its new etcd,
// then its new apiserver, then the slowest of the rest it changed. The components the upgrade
// changed are those the agent's journal says it upgraded since t0; the others count zero, even
// when they restarted on their own meanwhile (the machine operator of a 3-master cluster may,
// when its apiserver goes away).
func (c *componentClock) upgradeFloor(t0 time.Time) (time.Duration, map[string]time.Duration, error) {
	parts := map[string]time.Duration{partEtcd: 0, partAPIServer: 0, partRest: 0}
	changed := c.upgraded(t0)
	for _, h := range c.hosts {
		var ready time.Time // when this master's last upgraded stage was healthy
		run := func(comp string) (started, healthy time.Time, ok bool) {
			in := componentAt{h, comp}
			// The new version's processes start after it is unpacked; the old version may
			// have been started again before that, after a dependency's replacement.
			// /proc start times are in 10 ms ticks, and a new process may start within
			// milliseconds of its unpacking.
			from := t0
			if unpacked := changed[in].Add(-procTickSlack); unpacked.After(from) {
				from = unpacked
			}
			started, healthy, restarts, ran := c.since(in, from)
			if _, up := changed[in]; !up {
				if ran {
					c.b.Logf("%s on %s restarted during the upgrade, which did not change it; not in the floor", comp, h)
				}
				return started, healthy, false
			}
			if !ran || healthy.IsZero() {
				c.b.Fatalf("%s on %s: upgraded, but no healthy process seen since", comp, h)
			}
			c.noteRestarts(h, comp, restarts)
			return started, healthy, true
		}
		if started, healthy, ok := run(process.Etcd); ok {
			parts[partEtcd] += componentCost(started, healthy, time.Time{})
			ready = healthy
		}
		started, healthy, ok := run(process.KubeAPIServer)
		if !ok {
			return 0, nil, fmt.Errorf("kube-apiserver on %s was not upgraded", h)
		}
		parts[partAPIServer] += componentCost(started, healthy, ready)
		ready = healthy
		var slowest time.Duration
		for _, comp := range restComponents {
			if started, healthy, ok := run(comp); ok {
				slowest = max(slowest, componentCost(started, healthy, ready))
			}
		}
		parts[partRest] += slowest
	}
	return parts[partEtcd] + parts[partAPIServer] + parts[partRest], parts, nil
}

// upgraded reads the agents' journals: for each component an upgrade begun at t0 changed
// (journal step "upgraded"), when its new version was unpacked (step "unpacked"; zero if it
// was not, such as a version already on the host).
func (c *componentClock) upgraded(t0 time.Time) map[componentAt]time.Time {
	out := map[componentAt]time.Time{}
	for _, h := range c.hosts {
		entries, err := state.Journal{Path: filepath.Join(c.env.HostRoot(h), host.JournalFile)}.Read()
		if err != nil {
			c.b.Fatal(err)
		}
		for _, comp := range clusterComponents {
			var unpacked time.Time
			for _, e := range entries {
				if e.Package != process.PackageName(c.cluster, comp) || e.Time.Before(t0) {
					continue
				}
				switch e.Step {
				case "unpacked":
					if unpacked.IsZero() {
						unpacked = e.Time
					}
				case "upgraded":
					out[componentAt{h, comp}] = unpacked
				}
			}
		}
	}
	return out
}

// upgradeStop is how long the processes that stopped during an upgrade begun at t0 took to
// stop, summed over the masters (and by component). A replacement starts at the agent's journal
// entry "unpacked" of the package (the agent writes the configs and stops the old process, its
// dependents first, within milliseconds of it); every process gone after it and before the
// next one counts. The agent stops them one after another, so each one's share is from the
// previous one gone (or the entry) to its own exit, and the shares of a replacement add up to
// its stopping time.
func (c *componentClock) upgradeStop(t0 time.Time) (total time.Duration, byComponent map[string]time.Duration) {
	byComponent = map[string]time.Duration{}
	unpacked := c.unpackedTimes(t0)
	type exit struct {
		comp string
		at   time.Time
	}
	exits := map[string][]exit{} // by host
	c.mu.Lock()
	for in, runs := range c.runs {
		for _, r := range runs {
			if !r.exited.Before(t0) {
				exits[in.host] = append(exits[in.host], exit{in.comp, r.exited})
			}
		}
	}
	c.mu.Unlock()
	for h, es := range exits {
		sort.Slice(es, func(i, j int) bool { return es[i].at.Before(es[j].at) })
		var prev time.Time
		for _, e := range es {
			var began time.Time
			for _, u := range unpacked[h] {
				if u.Before(e.at) {
					began = u
				}
			}
			if began.IsZero() {
				c.b.Logf("%s on %s: a process gone at %v, before any new version was unpacked; its stop not measured", e.comp, h, e.at)
				continue
			}
			d := e.at.Sub(laterOf(began, prev))
			prev = e.at
			total += d
			byComponent[e.comp] += d
		}
	}
	return total, byComponent
}

// unpackedTimes lists, per host, the moments the agent unpacked a component's new version since
// t0, in order.
func (c *componentClock) unpackedTimes(t0 time.Time) map[string][]time.Time {
	out := map[string][]time.Time{}
	for in, at := range c.upgraded(t0) {
		if !at.IsZero() {
			out[in.host] = append(out[in.host], at)
		}
	}
	for _, ts := range out {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	}
	return out
}

func (c *componentClock) noteRestarts(h, comp string, n int) {
	if n > 0 {
		c.b.Logf("%s on %s restarted %d time(s) before it was healthy; the floor counts from its first start", comp, h, n)
	}
}

// adminClient probes kube-apiserver /readyz as the cluster's administrator, as kok's own
// check does; the admin kubeconfig is read once its Secret exists.
type adminClient struct {
	env     *harness.Env
	cluster string
	mu      sync.Mutex
	hc      *http.Client
}

func (a *adminClient) ready(ctx context.Context, url string) bool {
	hc, err := a.client(ctx)
	if err != nil {
		return false
	}
	return probeOK(ctx, hc, url)
}

func (a *adminClient) client(ctx context.Context) (*http.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.hc != nil {
		return a.hc, nil
	}
	kc, err := pkiacts.AdminKubeconfig(ctx, a.env.Client, a.cluster, "")
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return nil, err
	}
	tc, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	// Fresh connections: a kept-alive one would reach the process that was there before.
	a.hc = &http.Client{Timeout: clockProbeTimeout, Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}}
	return a.hc, nil
}

func probeOK(ctx context.Context, hc *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func roundAll(parts map[string]time.Duration) map[string]time.Duration {
	out := map[string]time.Duration{}
	for k, v := range parts {
		out[k] = v.Round(time.Millisecond)
	}
	return out
}

// loadAverage1 is the 1-minute load average.
func loadAverage1(b *testing.B) float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		b.Fatal(errors.New("empty /proc/loadavg"))
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
