package host

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"kok.dev/contract/hostapi"

	"kok.dev/internal/agent/supervisor"
)

// ServiceManager runs package services on the host. kok-agent's supervisor is one.
type ServiceManager interface {
	// Start runs spec, replacing a running instance of the same name, and fails if the
	// service exits within settle.
	Start(ctx context.Context, spec supervisor.Spec, settle time.Duration) error
	// Stop stops the named service; stopping an unknown one succeeds.
	Stop(name string) error
	// Status reports the named service.
	Status(name string) supervisor.Status
	// Spec returns the spec the named service runs with.
	Spec(name string) (supervisor.Spec, bool)
}

// defaultPath is the PATH services get: the agent's own environment is not theirs to inherit.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// serviceSpec turns a package's service into what the supervisor runs.
func (a *Activities) serviceSpec(spec hostapi.PackageSpec) supervisor.Spec {
	svc := spec.Service
	pkgDir := a.installerFor(spec.Installer).PackageDir(pkgOf(spec))
	r := a.expander(pkgDir)
	cmd := make([]string, 0, len(svc.Command)+len(svc.Args))
	for _, c := range append(append([]string{}, svc.Command...), svc.Args...) {
		cmd = append(cmd, r.Replace(c))
	}
	// A relative program belongs to the package (the API's rule for the local installer).
	if pkgDir != "" && !filepath.IsAbs(cmd[0]) {
		cmd[0] = filepath.Join(pkgDir, cmd[0])
	}
	env := []string{"PATH=" + defaultPath, "KOK_ROOT=" + a.kokRoot(), "KOK_HOST=" + a.Host, "KOK_PACKAGE_DIR=" + pkgDir}
	keys := make([]string, 0, len(svc.Env))
	for k := range svc.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable order makes two specs of one service compare equal
	for _, k := range keys {
		env = append(env, k+"="+r.Replace(svc.Env[k]))
	}
	dir := pkgDir
	if dir == "" {
		dir = a.Root
	}
	var ready func(context.Context) error
	if spec.HealthCheck != nil {
		ready = func(ctx context.Context) error { return a.checkOnce(ctx, spec) }
	}
	return supervisor.Spec{
		Name:          svc.Name,
		Path:          cmd[0],
		Args:          cmd[1:],
		Env:           env,
		Dir:           dir,
		RestartPolicy: supervisor.RestartPolicy(svc.RestartPolicy),
		LogPath:       a.path(filepath.Join(LogDir, svc.Name+".log")),
		// The supervisor stops a package's dependents before it, and starts them again once it
		// is healthy.
		Package:   spec.Name,
		DependsOn: spec.DependsOn,
		Ready:     ready,
	}
}

func (a *Activities) services() (ServiceManager, error) {
	if a.Services == nil {
		return nil, errors.New("kok-agent has no service manager (Activities.Services is nil)")
	}
	return a.Services, nil
}

// startService (re)starts the package's service and forgets restarts reported so far.
func (a *Activities) startService(ctx context.Context, spec hostapi.PackageSpec) error {
	sm, err := a.services()
	if err != nil {
		return err
	}
	heartbeat(ctx, "starting service "+spec.Service.Name)
	err = sm.Start(ctx, a.serviceSpec(spec), a.settle())
	a.ackRestarts(spec.Service.Name, 0)
	return err
}

func (a *Activities) stopService(spec hostapi.PackageSpec) error {
	if spec.Service == nil {
		return nil
	}
	sm, err := a.services()
	if err != nil {
		return err
	}
	if err := sm.Stop(spec.Service.Name); err != nil {
		return fmt.Errorf("stop service %s: %w", spec.Service.Name, err)
	}
	return nil
}

func (a *Activities) ackRestarts(service string, n int) {
	a.init()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acked[service] = n
}

// unackedRestarts returns restarts of service not yet reported, and marks them reported.
func (a *Activities) unackedRestarts(service string, total int) int {
	a.init()
	a.mu.Lock()
	defer a.mu.Unlock()
	n := total - a.acked[service]
	a.acked[service] = total
	return max(n, 0)
}

// StartInstalledServices starts the service of every installed package, as a host does when it
// boots. kok-agent calls it once it has started (a simulated host's services died with the
// previous agent). A service that fails to start is reported, and the others start anyway.
// It is a function, not a method, so that the worker does not register it as an activity.
func StartInstalledServices(ctx context.Context, a *Activities) error {
	unlock, err := a.acquire(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	st, err := a.loadState()
	if err != nil {
		return err
	}
	return a.startAll(ctx, st)
}

func (a *Activities) startAll(ctx context.Context, st *hostState) error {
	var errs []error
	for _, name := range st.names() {
		spec := st.Packages[name].Spec
		if spec.Service == nil {
			continue
		}
		if err := a.startService(ctx, spec); err != nil {
			errs = append(errs, fmt.Errorf("package %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
