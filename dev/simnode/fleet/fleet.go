package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"kok.dev/activities/host"
	"kok.dev/contract/queue"
	"kok.dev/dev/simnode/kubelet"
	hostworker "kok.dev/workers/host"
)

// Options configure a fleet.
type Options struct {
	// Temporal is the one client every host's worker shares.
	Temporal client.Client
	// Kube reaches the business cluster the hosts' Nodes join; nil runs no kubelets.
	Kube *rest.Config
	// Root holds one directory per host, Root/<host>.
	Root string
	// Hosts are the host names (each one's task queue is kok-host-<host>, its Node <host>).
	Hosts []string
	// StartRate is how many hosts start per second, so that bring-up does not open thousands of
	// polls and registrations in one instant. Default 100.
	StartRate int
	// KubeletVersion is the version the Nodes report. Default v1.37.2.
	KubeletVersion string
	// Logger receives the fleet's own lines (not the hosts'); nil discards them.
	Logger *slog.Logger
	// HostLoop, when set, runs for each host beside its worker until Stop, as kok-agent runs
	// its own loops beside its worker (such as a local check loop).
	HostLoop func(ctx context.Context, a *host.Activities)
}

// HostNames returns n host names prefix-00000, prefix-00001, ...
func HostNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

// Host is one simulated host of a fleet.
type Host struct {
	Name       string
	Root       string
	Services   *SimulatedServices
	Activities *host.Activities

	worker  worker.Worker
	kubelet *kubelet.Kubelet
}

// Fleet is a running set of simulated hosts.
type Fleet struct {
	o     Options
	hosts []*Host
	// kube is one clientset every simulated kubelet shares (one connection, not thousands).
	kube   kubernetes.Interface
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start brings up every host (StartRate per second) and returns once all workers poll. The
// kubelets keep running until Stop.
func Start(ctx context.Context, o Options) (*Fleet, error) {
	if o.Temporal == nil {
		return nil, errors.New("fleet: a Temporal client is required")
	}
	if o.Root == "" || o.Root == "/" {
		return nil, errors.New("fleet: a root directory is required (a simulated host must never change the real machine)")
	}
	if o.StartRate <= 0 {
		o.StartRate = 100
	}
	if o.KubeletVersion == "" {
		o.KubeletVersion = "v1.37.2"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	seen := map[string]bool{}
	for _, h := range o.Hosts {
		if h == "" || seen[h] {
			return nil, fmt.Errorf("fleet: host name %q is empty or repeated", h)
		}
		seen[h] = true
	}
	runCtx, cancel := context.WithCancel(context.Background())
	f := &Fleet{o: o, cancel: cancel}
	if o.Kube != nil {
		// Thousands of kubelets share this client: the default 5 QPS would throttle the fleet,
		// not the API server.
		cfg := rest.CopyConfig(o.Kube)
		cfg.QPS, cfg.Burst = 5000, 10000
		cfg.UserAgent = "kok-sim-fleet"
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("fleet: kube client: %w", err)
		}
		f.kube = cs
	}
	tick := time.NewTicker(time.Second / time.Duration(o.StartRate))
	defer tick.Stop()
	for _, name := range o.Hosts {
		h, err := f.startHost(ctx, runCtx, name)
		if err != nil {
			f.Stop()
			return nil, fmt.Errorf("fleet: host %s: %w", name, err)
		}
		f.hosts = append(f.hosts, h)
		select {
		case <-ctx.Done():
			f.Stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
	o.Logger.Info("fleet started", "hosts", len(f.hosts))
	return f, nil
}

func (f *Fleet) startHost(ctx, runCtx context.Context, name string) (*Host, error) {
	root := filepath.Join(f.o.Root, name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	h := &Host{Name: name, Root: root, Services: NewSimulatedServices()}
	h.Activities = &host.Activities{Host: name, Address: "127.0.0.1", Root: root, Simulate: true, Services: h.Services}
	// As a booting host does (and kok-agent on start): installed packages' services run again.
	if err := host.StartInstalledServices(ctx, h.Activities); err != nil {
		f.o.Logger.Warn("some installed services did not start", "host", name, "err", err)
	}
	// One activity poller per host: a host has little to do, and thousands of idle polls are
	// what the Temporal frontend pays for a fleet.
	h.worker = worker.New(f.o.Temporal, queue.HostTaskQueue(name), worker.Options{
		MaxConcurrentActivityTaskPollers: 1,
		Identity:                         "kok-sim-fleet@" + name,
	})
	hostworker.Register(h.worker, h.Activities)
	if err := h.worker.Start(); err != nil {
		return nil, err
	}
	if f.o.HostLoop != nil {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.o.HostLoop(runCtx, h.Activities)
		}()
	}
	if f.o.Kube != nil {
		k := kubelet.New(f.kube, name, kubelet.Options{Version: f.o.KubeletVersion})
		h.kubelet = k
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_ = k.Run(runCtx)
		}()
	}
	return h, nil
}

// Hosts are the fleet's hosts, in the order of Options.Hosts.
func (f *Fleet) Hosts() []*Host { return f.hosts }

// NodesHealthy counts the hosts whose kubelet has a fresh Lease.
func (f *Fleet) NodesHealthy() int {
	n := 0
	for _, h := range f.hosts {
		if h.kubelet != nil && h.kubelet.Healthy() == nil {
			n++
		}
	}
	return n
}

// Stop stops the kubelets and the workers (in parallel) and waits for them.
func (f *Fleet) Stop() {
	f.cancel()
	var wg sync.WaitGroup
	for _, h := range f.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.worker.Stop()
		}()
	}
	wg.Wait()
	f.wg.Wait()
}
