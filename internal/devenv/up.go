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

	"kok.dev/internal/codec"
	"kok.dev/internal/devenv/metacluster"
	"kok.dev/internal/devenv/supervisor"
	"kok.dev/internal/devenv/temporalserver"
)

const pollEvery = 200 * time.Millisecond

// probeClient bounds each health request, so one hung probe cannot use up a whole deadline.
var probeClient = &http.Client{Timeout: 5 * time.Second}

// Running is a started system. It runs until the context given to Up ends, Stop is called,
// or a part fails.
type Running struct {
	// State is what dev.json holds.
	State State

	cfg      Config
	lock     *lock
	codec    *http.Server
	codecErr chan error
	temporal *temporalserver.Server
	cluster  *metacluster.Cluster
	manager  *supervisor.Group

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Up starts the whole local system and returns once every part is ready. The system then runs
// until ctx ends or Stop is called (Wait returns nil) or a part fails (Wait returns why). If
// Up fails, whatever it started is stopped again.
func Up(ctx context.Context, cfg Config) (_ *Running, err error) {
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
	r := &Running{cfg: cfg, lock: l, codecErr: make(chan error, 1), manager: supervisor.NewGroup(), done: make(chan struct{})}
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

	r.progress("starting the codec server on %s", hostPort(cfg.CodecPort))
	if err := r.startCodec(); err != nil {
		return nil, err
	}

	r.progress("starting Temporal on %s and its Web UI on port %d (log: %s)", hostPort(cfg.TemporalPort), cfg.UIPort, cfg.logFile("temporal"))
	tctx, cancel := context.WithTimeout(ctx, cfg.ReadyTimeout)
	r.temporal, err = temporalserver.Start(tctx, temporalserver.Config{
		DBFile:        filepath.Join(cfg.StateDir, "temporal.db"),
		IP:            loopback,
		FrontendPort:  cfg.TemporalPort,
		UIPort:        cfg.UIPort,
		Namespaces:    []string{Namespace},
		LogFile:       cfg.logFile("temporal"),
		CodecEndpoint: r.codecURL(),
	})
	cancel()
	if err != nil {
		return nil, err
	}

	r.progress("starting the meta cluster: etcd, kube-apiserver, kube-controller-manager (logs in %s)", filepath.Join(cfg.StateDir, "logs"))
	r.cluster, err = metacluster.Start(ctx, metacluster.Config{
		BinDir:                cfg.K8sBins,
		Dir:                   cfg.StateDir,
		EtcdPort:              cfg.EtcdPort,
		APIServerPort:         cfg.APIServerPort,
		ControllerManagerPort: cfg.ControllerManagerPort,
		ReadyTimeout:          cfg.ReadyTimeout,
		StopGrace:             cfg.StopGrace,
	})
	if err != nil {
		return nil, err
	}

	r.progress("installing the CRDs from %s", cfg.CRDDir)
	crds, err := metacluster.ApplyCRDs(ctx, r.cluster.RESTConfig(), cfg.CRDDir, cfg.ReadyTimeout)
	if err != nil {
		return nil, err
	}
	if err := metacluster.EnsureNamespace(ctx, r.cluster.RESTConfig(), SystemNamespace); err != nil {
		return nil, err
	}

	r.progress("starting kok-manager (log: %s)", cfg.logFile(ManagerName))
	manager, err := r.startManager(ctx)
	if err != nil {
		return nil, err
	}

	r.State = r.state(crds, manager)
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
	if info, err := os.Stat(cfg.ManagerBin); err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		return fmt.Errorf("kok-manager not found or not executable at %s: run `make build` (or pass --manager-bin)", cfg.ManagerBin)
	}
	if _, err := metacluster.ReadCRDs(cfg.CRDDir); err != nil {
		return err
	}
	return cfg.checkPortsFree()
}

func (r *Running) progress(format string, args ...any) {
	_, _ = fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
}

func (r *Running) codecKeyFile() string { return filepath.Join(r.cfg.StateDir, "codec.key") }

func (r *Running) codecURL() string { return "http://" + hostPort(r.cfg.CodecPort) }

func (r *Running) uiURL() string { return "http://" + hostPort(r.cfg.UIPort) }

// startCodec serves the codec key to the Web UI. The key is made once: losing it would make
// every payload written with it unreadable.
func (r *Running) startCodec() error {
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

func (r *Running) startManager(ctx context.Context) (*supervisor.Process, error) {
	p, err := r.manager.Start(supervisor.Spec{
		Name: ManagerName,
		Path: r.cfg.ManagerBin,
		Args: []string{
			"--kubeconfig=" + r.cluster.Kubeconfig(),
			"--temporal-address=" + r.temporal.Address(),
			"--temporal-namespace=" + Namespace,
			"--codec-key-file=" + r.codecKeyFile(),
			"--metrics-bind-address=" + hostPort(r.cfg.ManagerMetricsPort),
			"--health-probe-bind-address=" + hostPort(r.cfg.ManagerProbePort),
			"--leader-election-namespace=" + SystemNamespace,
		},
		LogPath: r.cfg.logFile(ManagerName),
	})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ReadyTimeout)
	defer cancel()
	ready := r.managerReadyURL()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for {
		err := httpOK(ctx, probeClient, ready)
		if err == nil {
			return p, nil
		}
		select {
		case <-p.Done():
			return nil, p.ExitError()
		case <-ctx.Done():
			return nil, fmt.Errorf("%s not ready within %s (last check: %w); log: %s\n--- last lines of %s ---\n%s",
				ManagerName, r.cfg.ReadyTimeout, err, p.LogPath(), p.LogPath(), p.LogTail(supervisor.TailLines))
		case <-ticker.C:
		}
	}
}

func (r *Running) managerReadyURL() string {
	return "http://" + hostPort(r.cfg.ManagerProbePort) + "/readyz"
}

func (r *Running) state(crds []string, manager *supervisor.Process) State {
	procs := map[string]*supervisor.Process{}
	for _, p := range r.cluster.Processes() {
		procs[p.Name()] = p
	}
	child := func(name, url, health string) Part {
		return Part{URL: url, HealthURL: health, PID: procs[name].Pid(), Log: procs[name].LogPath()}
	}
	return State{
		PID:          os.Getpid(),
		StartedAt:    time.Now().UTC(),
		StateDir:     r.cfg.StateDir,
		Kubeconfig:   r.cluster.Kubeconfig(),
		CAFile:       r.cluster.CAFile(),
		Namespace:    Namespace,
		CodecKeyFile: r.codecKeyFile(),
		CRDs:         crds,
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
			PID:       manager.Pid(),
			Log:       manager.LogPath(),
		},
	}
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
