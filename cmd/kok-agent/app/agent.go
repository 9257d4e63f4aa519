package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"kok.dev/activities/host"
	"kok.dev/contract/queue"
	"kok.dev/internal/agent/state"
	"kok.dev/internal/agent/supervisor"
	"kok.dev/internal/tclient"
	hostworker "kok.dev/workers/host"
)

// Options are kok-agent's flags.
type Options struct {
	Host        string
	Address     string
	Root        string
	Simulate    bool
	MetricsAddr string
	// LocalCheckInterval is how often the agent's local loop keeps the host at its applied
	// specs (0: never, which leaves drift until a workflow applies a spec again).
	LocalCheckInterval time.Duration
	Temporal           tclient.Options
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	hostname, _ := os.Hostname()
	fs.StringVar(&o.Host, "host", hostname, "Name of this host; the agent serves task queue kok-host-<host> (defaults to the hostname, which should equal the Machine's spec.host).")
	fs.StringVar(&o.Address, "address", "", "IP address this host's services bind to and are reached at (a master's etcd and kube-apiserver advertise it). Default: the first non-loopback IPv4 address; 127.0.0.1 with --simulate. Simulated hosts on one machine take distinct loopback addresses (127.0.0.2, 127.0.0.3, ...) so that several masters keep standard ports.")
	fs.StringVar(&o.Root, "root", "/", "Root directory the agent manages. A simulated host uses a private directory.")
	fs.BoolVar(&o.Simulate, "simulate", false, "Run as a simulated host rooted at --root (for the local system and tests): nothing outside --root is changed.")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", "127.0.0.1:9090", "Address of /metrics and /healthz; \"0\" turns it off.")
	fs.DurationVar(&o.LocalCheckInterval, "local-check-interval", host.DefaultLocalCheckInterval, "How often the agent, on its own and without Temporal, restarts stopped services, rewrites drifted configs and sysctls of the installed packages and runs their health checks (jittered by ±10%). Workflows read the result with InspectHost. 0 turns the local loop off.")
	o.Temporal.AddFlags(fs)
}

// hostNameRE is what a host name may be: it becomes part of a task-queue name and of paths.
var hostNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// Validate refuses flags the agent cannot work with, naming the flag.
func (o *Options) Validate() error {
	if !hostNameRE.MatchString(o.Host) {
		return fmt.Errorf("--host %q: must be a lowercase DNS name (letters, digits, '-', '.')", o.Host)
	}
	if o.Simulate && (o.Root == "" || o.Root == "/") {
		return errors.New("--simulate needs --root DIR: a simulated host must never change the real machine")
	}
	if !filepath.IsAbs(o.Root) {
		abs, err := filepath.Abs(o.Root)
		if err != nil {
			return fmt.Errorf("--root %q: %w", o.Root, err)
		}
		o.Root = abs
	}
	if o.LocalCheckInterval < 0 || (o.LocalCheckInterval > 0 && o.LocalCheckInterval < time.Second) {
		return fmt.Errorf("--local-check-interval %s: must be 0 (off) or at least 1s", o.LocalCheckInterval)
	}
	if o.Address == "" {
		o.Address = defaultAddress(o.Simulate)
	}
	if ip := net.ParseIP(o.Address); ip == nil {
		return fmt.Errorf("--address %q: not an IP address", o.Address)
	}
	return o.Temporal.Validate()
}

// defaultAddress is the first non-loopback IPv4 address of the machine, or loopback for a
// simulated host (or a machine without one).
func defaultAddress(simulate bool) string {
	if !simulate {
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
					return n.IP.String()
				}
			}
		}
	}
	return "127.0.0.1"
}

// Run serves the host's task queue until ctx ends.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if o.Simulate {
		if err := os.MkdirAll(o.Root, 0o755); err != nil {
			return fmt.Errorf("create simulated host root: %w", err)
		}
	}
	// One agent per host root: two would both supervise the same services.
	lock, err := state.AcquireLock(filepath.Join(o.Root, host.LockFile))
	if err != nil {
		return err
	}
	defer func() { _ = lock.Release() }()

	// Services run under the agent's supervisor. On a simulated host they die with the agent,
	// even a killed one: a stopped host must look stopped (its node goes NotReady).
	sup := supervisor.New(supervisor.Options{
		RunDir:       filepath.Join(o.Root, host.RunDir),
		DieWithAgent: o.Simulate,
		Logger:       log.With("component", "supervisor"),
	})
	defer sup.Close() // after the worker has stopped: no activity uses it any more
	acts := &host.Activities{Host: o.Host, Address: o.Address, Root: o.Root, Simulate: o.Simulate, Services: sup, Logger: log}
	// Like a host that boots: every installed package's service starts again.
	if err := host.StartInstalledServices(ctx, acts); err != nil {
		log.Error("some installed services did not start; the local loop retries them", "err", err)
	}
	// The local loop keeps the host at its applied specs with no Temporal traffic. It ends
	// before the supervisor closes (defers run last-in first-out).
	if o.LocalCheckInterval > 0 {
		loopCtx, stopLoop := context.WithCancel(ctx)
		loopDone := make(chan struct{})
		go func() {
			defer close(loopDone)
			host.RunLocalLoop(loopCtx, acts, o.LocalCheckInterval)
		}()
		defer func() { stopLoop(); <-loopDone }()
	}

	// Temporal last: the host is kept without it, so an outage delays only what workflows ask.
	o.Temporal.Identity = "kok-agent@" + o.Host
	tc, err := dialTemporal(ctx, o.Temporal, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil // told to stop while Temporal was away
		}
		return err
	}
	defer tc.Close()

	hostQueue := queue.HostTaskQueue(o.Host)
	w := worker.New(tc, hostQueue, worker.Options{})
	hostworker.Register(w, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker on %s: %w", hostQueue, err)
	}
	defer w.Stop()

	srv, err := serveMetrics(o.MetricsAddr, log)
	if err != nil {
		return err
	}
	log.Info("kok-agent serving", "host", o.Host, "taskQueue", hostQueue, "root", o.Root, "simulate", o.Simulate, "localCheckInterval", o.LocalCheckInterval)
	<-ctx.Done()
	if srv != nil {
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}
	return nil
}

// dialTemporal connects to Temporal, trying again with backoff (1s doubling to 30s) while it is
// unreachable, so that an agent started during a Temporal outage keeps its host's services
// running instead of exiting. Flags that cannot work fail at once.
func dialTemporal(ctx context.Context, o tclient.Options, log *slog.Logger) (client.Client, error) {
	if _, err := o.ClientOptions(log); err != nil {
		return nil, err
	}
	wait := time.Second
	for {
		tc, err := tclient.Dial(ctx, o, log)
		if err == nil {
			return tc, nil
		}
		log.Warn("Temporal is unreachable; the local loop keeps the host meanwhile", "err", err, "retryIn", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func serveMetrics(addr string, log *slog.Logger) (*http.Server, error) {
	if addr == "0" || addr == "" {
		return nil, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-bind-address %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("metrics endpoint listening", "addr", l.Addr().String())
	return srv, nil
}
