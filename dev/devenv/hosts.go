package devenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"kok.dev/activities/host"
	"kok.dev/dev/devenv/supervisor"
)

// Roles of simulated hosts.
const (
	RoleMaster = "master"
	RoleWorker = "worker"
)

// Host is one simulated host of the demo cluster.
type Host struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Address is the host's own loopback address, which its services bind to.
	Address string `json:"address"`
	// Root is the host's root directory: its packages, configs, data and service logs.
	Root string `json:"root"`
}

// hosts are the simulated hosts: masters first, then workers. Each takes the next loopback
// address from 127.0.0.2 (127.0.0.1 is the meta cluster's), as the test harness does, so
// that every master keeps the same ports and nothing clashes with the meta cluster.
func (c *Config) hosts() []Host {
	var hs []Host
	for i := range c.Masters {
		hs = append(hs, Host{Name: fmt.Sprintf("master-%d", i+1), Role: RoleMaster})
	}
	for i := range c.Workers {
		hs = append(hs, Host{Name: fmt.Sprintf("worker-%d", i+1), Role: RoleWorker})
	}
	for i := range hs {
		hs[i].Address = fmt.Sprintf("127.0.0.%d", i+2)
		hs[i].Root = filepath.Join(c.StateDir, "hosts", hs[i].Name)
	}
	return hs
}

func hostNames(hs []Host, role string) []string {
	var names []string
	for _, h := range hs {
		if h.Role == role {
			names = append(names, h.Name)
		}
	}
	return names
}

// agentName names a host's agent in messages and its log file.
func agentName(h Host) string { return AgentName + "-" + h.Name }

// startHosts runs one kok-agent per simulated host and waits until each serves /healthz,
// which it does once its Temporal worker polls and the services of its installed packages
// are started again (so on a restart the demo cluster's control plane is back by then).
func (r *Running) startHosts(ctx context.Context) error {
	hosts := r.cfg.hosts()
	for _, h := range hosts {
		if err := r.prepareHost(h); err != nil {
			return err
		}
	}
	procs := make([]*supervisor.Process, len(hosts))
	for i, h := range hosts {
		p, err := r.demo.Start(supervisor.Spec{
			Name: agentName(h),
			Path: r.cfg.AgentBin,
			Args: []string{
				"--host=" + h.Name,
				"--address=" + h.Address,
				"--simulate",
				"--root=" + h.Root,
				"--temporal-address=" + r.temporal.Address(),
				"--temporal-namespace=" + Namespace,
				"--codec-key-file=" + r.codecKeyFile(),
				"--metrics-bind-address=" + r.agentAddr(h),
			},
			LogPath: r.cfg.logFile(agentName(h)),
		})
		if err != nil {
			return err
		}
		procs[i] = p
		r.hosts = append(r.hosts, HostPart{Host: h, Part: Part{
			URL: "http://" + r.agentAddr(h) + "/metrics", HealthURL: "http://" + r.agentAddr(h) + "/healthz",
			PID: p.Pid(), Log: p.LogPath(),
		}})
	}
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i := range hosts {
		wg.Go(func() { errs[i] = waitHTTP(ctx, r.cfg.ReadyTimeout, procs[i], r.hosts[i].HealthURL) })
	}
	wg.Wait()
	for i, h := range hosts {
		if errs[i] == nil {
			r.detail("%s %s on %s, root %s", h.Role, h.Name, h.Address, DisplayPath(h.Root))
		}
	}
	return errors.Join(errs...)
}

func (r *Running) agentAddr(h Host) string {
	return h.Address + ":" + strconv.Itoa(r.cfg.AgentMetricsPort)
}

// prepareHost creates the host's root and links its service logs into the state's logs.
func (r *Running) prepareHost(h Host) error {
	logs := filepath.Join(h.Root, host.LogDir)
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return fmt.Errorf("create root of %s: %w", h.Name, err)
	}
	link := filepath.Join(r.cfg.StateDir, "logs", "hosts", h.Name)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return err
	}
	// Relative, so that the state directory can move.
	target, err := filepath.Rel(filepath.Dir(link), logs)
	if err != nil {
		return err
	}
	if old, err := os.Readlink(link); err == nil && old == target {
		return nil
	}
	_ = os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("link the service logs of %s: %w", h.Name, err)
	}
	return nil
}

// reportExit is how a simulated host or kwok that dies is reported: by name, with its log,
// while the rest keeps running. A host that stops is a scenario kok itself handles (its node
// goes NotReady); `kok dev status` shows it until the next `kok dev up` starts it again.
func (r *Running) reportExit(e *supervisor.ExitError) {
	_, _ = fmt.Fprintf(r.cfg.Progress, "warning: %v\n(the rest keeps running; `kok dev status` shows it, and the next `kok dev up` starts it again)\n", e)
}

// waitHTTP polls url until it answers 200, p exits, or timeout passes.
func waitHTTP(ctx context.Context, timeout time.Duration, p *supervisor.Process, url string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	for {
		err := httpOK(ctx, probeClient, url)
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return p.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s (last check: %w); log: %s\n--- last lines of %s ---\n%s",
				p.Name(), timeout, err, p.LogPath(), p.LogPath(), p.LogTail(supervisor.TailLines))
		case <-ticker.C:
		}
	}
}
