package devenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"kok.dev/dev/devenv/metacluster"
	"kok.dev/dev/devenv/supervisor"
	"kok.dev/dev/devenv/temporalserver"
	"kok.dev/internal/codec"
)

const pollEvery = 200 * time.Millisecond

// agentServiceGrace is how long kok-agent gives each service to stop before it kills it.
const agentServiceGrace = 10 * time.Second

// probeClient bounds each health request, so one hung probe cannot use up a whole deadline.
var probeClient = &http.Client{Timeout: 5 * time.Second}

// Running is a started system. It runs until the context given to Up ends, Stop is called,
// or a part fails.
type Running struct {
	// State is what dev.json holds.
	State State
	// DemoErr says why the demo cluster did not become ready; nil when it did. The rest of the
	// system runs either way, so that the Web UI and the objects show what went wrong.
	DemoErr error

	cfg       Config
	startedAt time.Time
	lock      *lock
	codec     *http.Server
	codecErr  chan error
	temporal  *temporalserver.Server
	cluster   *metacluster.Cluster
	crds      []string
	manager   *supervisor.Group
	managerP  *supervisor.Process
	meta      client.Client
	// demo runs the simulated hosts and kwok: one of them that dies is reported by name and
	// the rest keeps running.
	demo       *supervisor.Group
	hosts      []HostPart
	kwok       *Part
	demoClient client.Client
	demoInfo   Demo
	steps      []StepTime

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// step is one numbered step of the start.
type step struct {
	title string
	run   func(context.Context) error
	// demo steps build the demo cluster: a failure is reported and skips the demo steps
	// after it, but stops nothing.
	demo bool
}

func (r *Running) plan() []step {
	cfg := r.cfg
	steps := []step{
		{title: "codec server on " + hostPort(cfg.CodecPort), run: r.startCodec},
		{title: fmt.Sprintf("Temporal on %s, its Web UI on %s (log: %s)", hostPort(cfg.TemporalPort), r.uiURL(), DisplayPath(cfg.logFile("temporal"))), run: r.startTemporal},
		{title: "meta cluster: etcd, kube-apiserver, kube-controller-manager (logs in " + DisplayPath(filepath.Join(cfg.StateDir, "logs")) + ")", run: r.startMetaCluster},
		{title: "kok's CRDs from " + DisplayPath(cfg.CRDDir) + " and namespace " + SystemNamespace, run: r.installCRDs},
		{title: "kok-manager (log: " + DisplayPath(cfg.logFile(ManagerName)) + ")", run: r.startManager},
	}
	if !cfg.Demo {
		return steps
	}
	return append(steps,
		step{title: fmt.Sprintf("simulated hosts: %s, %s (kok-agent each; logs in %s)", count(cfg.Masters, "master"), count(cfg.Workers, "worker"), DisplayPath(filepath.Join(cfg.StateDir, "logs"))), run: r.startHosts, demo: true},
		step{title: "control-plane catalogue: ClusterPackageVersions " + strings.Join(cfg.ClusterVersions, ", "), run: r.ensureClusterCatalogue, demo: true},
		step{title: fmt.Sprintf("demo cluster %q on %s, created by kok-manager's Cluster workflow", DemoCluster, strings.Join(hostNames(cfg.hosts(), RoleMaster), ", ")), run: r.ensureDemoCluster, demo: true},
		step{title: "demo nodes: node catalogue, a Machine per worker (packages installed by its agent), readiness gates, kwok", run: r.ensureDemoNodes, demo: true},
		step{title: fmt.Sprintf("demo Deployment %s/%s on the nodes", demoNamespace, demoApp), run: r.ensureDemoApp, demo: true},
	)
}

func count(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Up starts the whole local system and returns once every part is ready. The system then runs
// until ctx ends or Stop is called (Wait returns nil) or a part fails (Wait returns why). If
// Up fails, whatever it started is stopped again. A demo cluster that does not become ready
// stops nothing: Up returns with DemoErr set.
func Up(ctx context.Context, cfg Config) (_ *Running, err error) {
	startedAt := time.Now()
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	l, err := acquireLock(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	r := &Running{
		cfg: cfg, startedAt: startedAt, lock: l, codecErr: make(chan error, 1),
		manager: supervisor.NewGroup(), done: make(chan struct{}),
		demoInfo: Demo{Name: DemoCluster, Deployment: demoNamespace + "/" + demoApp},
	}
	r.demo = supervisor.NewReportingGroup(r.reportExit)
	defer func() {
		if err != nil {
			r.shutdown()
		}
	}()
	if err := preflight(cfg); err != nil {
		return nil, err
	}
	// A stale dev.json would make `kok dev status` probe a system that is not there yet.
	if err := os.Remove(filepath.Join(cfg.StateDir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale %s: %w", stateFile, err)
	}

	steps := r.plan()
	for i, s := range steps {
		if s.demo && r.DemoErr != nil {
			r.progress("[%d/%d] %s: skipped", i+1, len(steps), s.title)
			continue
		}
		r.progress("[%d/%d] %s", i+1, len(steps), s.title)
		begin := time.Now()
		err := s.run(ctx)
		switch {
		case err == nil:
			took := time.Since(begin)
			r.steps = append(r.steps, StepTime{Step: s.title, Seconds: took.Seconds()})
			if took >= time.Second {
				r.detail("done in %s", took.Round(100*time.Millisecond))
			}
		case s.demo && ctx.Err() == nil:
			r.DemoErr = err
			r.progress("FAILED: %v", err)
		default:
			return nil, err
		}
	}

	r.State = r.state()
	if err := writeState(cfg.StateDir, &r.State); err != nil {
		return nil, err
	}

	runCtx, cancelRun := context.WithCancel(ctx)
	r.cancel = cancelRun
	go r.supervise(runCtx)
	return r, nil
}

// Wait blocks until the system has stopped. It returns nil when it was asked to stop and the
// failure otherwise (for a crashed child: its name, log path and last log lines).
func (r *Running) Wait() error {
	<-r.done
	return r.err
}

// Stop stops the system and waits for it; it returns what Wait returns.
func (r *Running) Stop() error {
	r.cancel()
	return r.Wait()
}

func preflight(cfg Config) error {
	if err := metacluster.CheckBinaries(cfg.K8sBins); err != nil {
		return err
	}
	if err := executable(cfg.ManagerBin, ManagerName, "make build", "--manager-bin"); err != nil {
		return err
	}
	if _, err := metacluster.ReadCRDs(cfg.CRDDir); err != nil {
		return err
	}
	if cfg.Demo {
		if err := executable(cfg.AgentBin, AgentName, "make build", "--agent-bin"); err != nil {
			return err
		}
		if err := executable(cfg.KwokBin, KwokName, "make kwok", "--kwok-bin"); err != nil {
			return err
		}
		if _, err := os.Stat(cfg.KwokStages); err != nil {
			return fmt.Errorf("kwok stages: %w (pass --kwok-stages deploy/kwok/stages.yaml of a checkout)", err)
		}
	}
	return cfg.checkPortsFree()
}

func executable(path, what, build, flag string) error {
	if info, err := os.Stat(path); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		return fmt.Errorf("%s not found or not executable at %s: run `%s` (or pass %s)", what, path, build, flag)
	}
	return nil
}

func (r *Running) progress(format string, args ...any) {
	_, _ = fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
}

// detail is a line under the current step.
func (r *Running) detail(format string, args ...any) {
	_, _ = fmt.Fprintf(r.cfg.Progress, "      "+format+"\n", args...)
}

func (r *Running) codecKeyFile() string { return filepath.Join(r.cfg.StateDir, "codec.key") }

func (r *Running) codecURL() string { return "http://" + hostPort(r.cfg.CodecPort) }

func (r *Running) uiURL() string { return "http://" + hostPort(r.cfg.UIPort) }

// startCodec serves the codec key to the Web UI. The key is made once: losing it would make
// every payload written with it unreadable.
func (r *Running) startCodec(context.Context) error {
	keyFile := r.codecKeyFile()
	if _, err := os.Stat(keyFile); errors.Is(err, os.ErrNotExist) {
		if err := codec.GenerateKeyFile(keyFile); err != nil {
			return fmt.Errorf("generate codec key: %w", err)
		}
	}
	keys, err := codec.LoadKeyring(keyFile)
	if err != nil {
		return fmt.Errorf("codec key: %w", err)
	}
	ln, err := net.Listen("tcp", hostPort(r.cfg.CodecPort))
	if err != nil {
		return fmt.Errorf("codec server: %w", err)
	}
	// Browsers send the page's origin; the UI may be opened as localhost or as 127.0.0.1.
	origins := []string{r.uiURL(), "http://localhost:" + strconv.Itoa(r.cfg.UIPort)}
	r.codec = &http.Server{Handler: codec.NewHTTPHandler(keys, origins), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := r.codec.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			r.codecErr <- fmt.Errorf("codec server on %s stopped: %w", hostPort(r.cfg.CodecPort), err)
		}
	}()
	return nil
}

func (r *Running) startTemporal(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	var err error
	r.temporal, err = temporalserver.Start(ctx, temporalserver.Config{
		DBFile:        filepath.Join(r.cfg.StateDir, "temporal.db"),
		IP:            loopback,
		FrontendPort:  r.cfg.TemporalPort,
		UIPort:        r.cfg.UIPort,
		Namespaces:    []string{Namespace},
		LogFile:       r.cfg.logFile("temporal"),
		CodecEndpoint: r.codecURL(),
	})
	return err
}

func (r *Running) startMetaCluster(ctx context.Context) error {
	var err error
	r.cluster, err = metacluster.Start(ctx, metacluster.Config{
		BinDir:                r.cfg.K8sBins,
		Dir:                   r.cfg.StateDir,
		EtcdPort:              r.cfg.EtcdPort,
		APIServerPort:         r.cfg.APIServerPort,
		ControllerManagerPort: r.cfg.ControllerManagerPort,
		ReadyTimeout:          r.cfg.ReadyTimeout,
		StopGrace:             r.cfg.StopGrace,
	})
	return err
}

func (r *Running) installCRDs(ctx context.Context) error {
	var err error
	r.crds, err = metacluster.ApplyCRDs(ctx, r.cluster.RESTConfig(), r.cfg.CRDDir, r.cfg.ReadyTimeout)
	if err != nil {
		return err
	}
	if err := metacluster.EnsureNamespace(ctx, r.cluster.RESTConfig(), SystemNamespace); err != nil {
		return err
	}
	r.meta, err = newClient(r.cluster.RESTConfig())
	return err
}

func (r *Running) startManager(ctx context.Context) error {
	p, err := r.manager.Start(supervisor.Spec{
		Name: ManagerName,
		Path: r.cfg.ManagerBin,
		Args: []string{
			"--kubeconfig=" + r.cluster.Kubeconfig(),
			"--temporal-address=" + r.temporal.Address(),
			"--temporal-namespace=" + Namespace,
			"--temporal-ui-url=" + r.uiURL(),
			"--codec-key-file=" + r.codecKeyFile(),
			"--metrics-bind-address=" + hostPort(r.cfg.ManagerMetricsPort),
			"--health-probe-bind-address=" + hostPort(r.cfg.ManagerProbePort),
			"--leader-election-namespace=" + SystemNamespace,
		},
		LogPath: r.cfg.logFile(ManagerName),
	})
	if err != nil {
		return err
	}
	r.managerP = p
	return waitHTTP(ctx, r.cfg.ReadyTimeout, p, r.managerReadyURL())
}

func (r *Running) managerReadyURL() string {
	return "http://" + hostPort(r.cfg.ManagerProbePort) + "/readyz"
}

func (r *Running) state() State {
	procs := map[string]*supervisor.Process{}
	for _, p := range r.cluster.Processes() {
		procs[p.Name()] = p
	}
	child := func(name, url, health string) Part {
		return Part{URL: url, HealthURL: health, PID: procs[name].Pid(), Log: procs[name].LogPath()}
	}
	s := State{
		PID:          os.Getpid(),
		StartedAt:    r.startedAt.UTC(),
		StateDir:     r.cfg.StateDir,
		Kubeconfig:   r.cluster.Kubeconfig(),
		CAFile:       r.cluster.CAFile(),
		Namespace:    Namespace,
		CodecKeyFile: r.codecKeyFile(),
		CRDs:         r.crds,
		Temporal:     Part{URL: r.temporal.Address(), Log: r.cfg.logFile("temporal")},
		WebUI:        Part{URL: r.temporal.UIURL(), Log: r.cfg.logFile("temporal")},
		Codec:        Part{URL: r.codecURL(), HealthURL: r.codecURL() + "/healthz"},
		Etcd:         child(metacluster.Etcd, r.cluster.EtcdURL(), r.cluster.EtcdURL()+"/health"),
		APIServer:    child(metacluster.APIServer, r.cluster.APIServerURL(), r.cluster.APIServerURL()+"/readyz"),
		ControllerManager: child(metacluster.ControllerManager,
			"https://"+hostPort(r.cfg.ControllerManagerPort), r.cluster.ControllerManagerHealthURL()),
		Manager: Part{
			URL:       "http://" + hostPort(r.cfg.ManagerMetricsPort) + "/metrics",
			HealthURL: r.managerReadyURL(),
			PID:       r.managerP.Pid(),
			Log:       r.managerP.LogPath(),
		},
		Hosts:        r.hosts,
		Kwok:         r.kwok,
		Steps:        r.steps,
		ReadySeconds: time.Since(r.startedAt).Seconds(),
	}
	if r.cfg.Demo {
		d := r.demoInfo
		d.Kubeconfig = r.demoKubeconfigPath()
		d.Workers = hostNames(r.cfg.hosts(), RoleWorker)
		if r.DemoErr != nil {
			d.Problem = r.DemoErr.Error()
		}
		s.Demo = &d
	}
	return s
}

// supervise waits for the end (ctx) or the first failure, then stops everything.
func (r *Running) supervise(ctx context.Context) {
	var failure error
	select {
	case <-ctx.Done():
	case exit := <-r.cluster.Exited():
		failure = exit
	case exit := <-r.manager.Exited():
		failure = exit
	case err := <-r.codecErr:
		failure = err
	}
	if failure != nil {
		// The details (log tail) travel in the error Wait returns; this line only explains
		// the stopping that follows.
		first, _, _ := strings.Cut(failure.Error(), "\n")
		_, _ = fmt.Fprintf(r.cfg.Progress, "stopping everything: %s\n", first)
	}
	r.shutdown()
	r.err = failure
	close(r.done)
}

// shutdown stops whatever runs, in reverse start order, and releases the state directory.
// Children that had to be killed are reported as progress: the system is down either way.
func (r *Running) shutdown() {
	warn := func(err error) {
		if err != nil {
			_, _ = fmt.Fprintf(r.cfg.Progress, "warning: %v\n", err)
		}
	}
	// An agent first stops its services, each with a grace period of its own (10 s).
	warn(r.demo.StopAll(r.cfg.StopGrace + agentServiceGrace))
	warn(r.manager.Stop(r.cfg.StopGrace))
	if r.cluster != nil {
		warn(r.cluster.Stop())
	}
	if r.temporal != nil {
		warn(r.temporal.Stop())
	}
	if r.codec != nil {
		warn(r.codec.Close())
	}
	if err := os.Remove(filepath.Join(r.cfg.StateDir, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		warn(err)
	}
	warn(r.lock.release())
}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
