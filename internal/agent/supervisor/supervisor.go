package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RestartPolicy says when an exited service is started again.
type RestartPolicy string

const (
	// RestartAlways restarts the service whenever it exits.
	RestartAlways RestartPolicy = "Always"
	// RestartOnFailure restarts it only after a non-zero exit or a signal.
	RestartOnFailure RestartPolicy = "OnFailure"
)

// Spec says how to run one service.
type Spec struct {
	Name string
	Path string
	Args []string
	// Env is the service's whole environment, KEY=VALUE.
	Env []string
	// Dir is the working directory; empty means the agent's.
	Dir           string
	RestartPolicy RestartPolicy
	// LogPath receives stdout and stderr, appended across runs.
	LogPath string

	// Package is the package the service belongs to, and DependsOn the packages whose services
	// it needs running (the package's DependsOn). The supervisor stops a service's dependents
	// before the service itself and starts them again after a replacement: a client that
	// outlives its server can hang in its own shutdown (kube-apiserver, once etcd is gone,
	// never finishes its SIGTERM), and a server with clients still attached waits for them
	// (etcd holds its stop up to its request timeout, 7 s, for the apiserver's watches).
	Package   string
	DependsOn []string
	// StopSignal asks the service to stop (default SIGTERM); StopGrace is how long it has
	// before SIGKILL (default Options.StopGrace).
	StopSignal syscall.Signal
	StopGrace  time.Duration
	// Ready, when set, says whether the service serves (its health check). The services that
	// depend on it start again only once it does (or after Options.ReadyTimeout): a client
	// started before its server listens may give up at once (kube-controller-manager exits when
	// the apiserver refuses its first requests).
	Ready func(context.Context) error
}

// Equal reports whether two specs run the same process the same way. Dependencies and the
// stop signal are not part of the process: they take effect at its next start.
func (s Spec) Equal(o Spec) bool {
	return s.Name == o.Name && s.Path == o.Path && s.Dir == o.Dir && s.RestartPolicy == o.RestartPolicy &&
		s.LogPath == o.LogPath && slicesEqual(s.Args, o.Args) && slicesEqual(s.Env, o.Env)
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Status is what the supervisor knows about one service.
type Status struct {
	Known     bool // the supervisor has been asked to run it
	Running   bool
	PID       int
	StartedAt time.Time
	// Restarts counts the times the supervisor started the service again after it exited.
	Restarts   int
	LastExit   string // such as "exit status 1" or "signal: killed"
	LastExitAt time.Time
}

// Options tune a Supervisor; zero values take the defaults.
type Options struct {
	// RunDir holds one pid file per service.
	RunDir string
	// StopGrace is how long a service has between SIGTERM and SIGKILL. Default 10s.
	StopGrace time.Duration
	// MinBackoff and MaxBackoff bound the delay before a restart; it doubles after each quick
	// exit and resets after a run of StableAfter. Defaults 200ms, 30s and 10s.
	MinBackoff  time.Duration
	MaxBackoff  time.Duration
	StableAfter time.Duration
	// MaxLogBytes: a log larger than this is moved to <log>.1 (replacing an older one).
	// Default 10 MiB.
	MaxLogBytes int64
	// ReadyTimeout bounds the wait for a started service's Ready before its dependents start
	// again anyway. Default 2m.
	ReadyTimeout time.Duration
	// DieWithAgent makes every service receive SIGKILL when the agent process dies.
	DieWithAgent bool
	Logger       *slog.Logger
}

// Supervisor runs services. It is safe for concurrent use.
type Supervisor struct {
	o Options
	// ops serialises the operations that change which services run (Start, Stop, StopAll), so
	// that a dependency order holds across them.
	ops      sync.Mutex
	mu       sync.Mutex
	services map[string]*service
	quit     chan struct{}
	done     chan struct{}
}

// New returns a supervisor; Close stops it and its services.
func New(o Options) *Supervisor {
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.StableAfter == 0 {
		o.StableAfter = 10 * time.Second
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Minute
	}
	if o.MaxLogBytes == 0 {
		o.MaxLogBytes = 10 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Supervisor{o: o, services: map[string]*service{}, quit: make(chan struct{}), done: make(chan struct{})}
	go s.rotateLoop()
	return s
}

type service struct {
	spec     Spec
	stop     chan struct{} // closed to ask the loop to end
	stopOnce sync.Once
	over     chan struct{} // closed when the loop has ended and no process is left
	// held: stopped because something it depends on stopped; started again with it (s.mu).
	held bool

	mu     sync.Mutex
	status Status
}

// run is one process of a service.
type run struct {
	pid      int
	started  time.Time
	logStart int64
	exited   chan struct{} // closed once the process is reaped; err is set before
	err      error
}

// Start runs spec, first stopping a service of the same name if one runs. It waits up to settle
// and fails if the service exits within that time, with the end of its log saying why; the
// service stays registered either way (its restart policy goes on applying).
//
// Replacing a running service first stops the services that depend on it (see
// Spec.DependsOn), dependents before their dependencies, and starts them again, dependencies
// first, right after the new process: they are clients, and retry their server until it
// answers as they do after any restart of it. Services held by an earlier Stop of this one
// start again too.
func (s *Supervisor) Start(ctx context.Context, spec Spec, settle time.Duration) error {
	if spec.Name == "" || spec.Path == "" || spec.LogPath == "" {
		return fmt.Errorf("service spec needs a name, a program and a log path (got name %q, program %q)", spec.Name, spec.Path)
	}
	s.ops.Lock()
	first, err := s.replace(spec)
	s.ops.Unlock()
	if err != nil {
		return err
	}
	if settle <= 0 {
		return nil
	}
	timer := time.NewTimer(settle)
	defer timer.Stop()
	select {
	case <-first.exited:
		return fmt.Errorf("service %s exited within %s of starting (%s)%s", spec.Name, settle, describeExit(first.err), logTailMessage(spec.LogPath, first.logStart))
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// replace stops what runs under spec's name (its dependents first), starts spec, and starts the
// dependents again. The caller holds s.ops.
func (s *Supervisor) replace(spec Spec) (*run, error) {
	if old := s.lookup(spec.Name); old != nil {
		s.hold(s.dependents(spec.Name))
		s.end(old)
	}
	s.clearLeftover(spec.Name)
	svc := newService(spec)
	first, err := s.spawn(svc)
	if err != nil {
		s.forget(spec.Name, nil)
		return nil, fmt.Errorf("start service %s: %w", spec.Name, err)
	}
	s.mu.Lock()
	s.services[spec.Name] = svc
	s.mu.Unlock()
	go s.loop(svc, first)
	s.resumeWhenReady(svc)
	return first, nil
}

// resumeWhenReady starts again the services held for svc once svc is ready (at once when it
// has no Ready), unless svc was stopped or replaced meanwhile. The caller holds s.ops.
func (s *Supervisor) resumeWhenReady(svc *service) {
	if svc.spec.Package == "" || len(s.heldUsersOf(svc.spec.Package)) == 0 {
		return
	}
	if svc.spec.Ready == nil {
		s.resume(svc.spec.Package)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.o.ReadyTimeout)
		defer cancel()
		tick := time.NewTicker(readyPoll)
		defer tick.Stop()
		for svc.spec.Ready(ctx) != nil {
			select {
			case <-ctx.Done():
				s.o.Logger.Warn("service not ready in time; starting its dependents anyway", "service", svc.spec.Name, "timeout", s.o.ReadyTimeout)
			case <-svc.stop:
				return
			case <-s.quit:
				return
			case <-tick.C:
				continue
			}
			break
		}
		s.ops.Lock()
		defer s.ops.Unlock()
		if s.lookup(svc.spec.Name) == svc && !svc.stopped() {
			s.resume(svc.spec.Package)
		}
	}()
}

// readyPoll is how often a started service's Ready is asked while dependents wait for it.
const readyPoll = 100 * time.Millisecond

// stopped reports whether svc was asked to stop.
func (svc *service) stopped() bool {
	select {
	case <-svc.stop:
		return true
	default:
		return false
	}
}

func newService(spec Spec) *service {
	svc := &service{spec: spec, stop: make(chan struct{}), over: make(chan struct{})}
	svc.status.Known = true
	return svc
}

func (s *Supervisor) lookup(name string) *service {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.services[name]
}

// forget unregisters name if it is still svc (any service under that name when svc is nil).
func (s *Supervisor) forget(name string, svc *service) {
	s.mu.Lock()
	if cur := s.services[name]; cur != nil && (svc == nil || cur == svc) {
		delete(s.services, name)
	}
	s.mu.Unlock()
}

// end stops svc's process (its stop signal, SIGKILL after its grace) and waits for its loop.
func (s *Supervisor) end(svc *service) {
	svc.stopOnce.Do(func() { close(svc.stop) })
	<-svc.over
	s.removePidFile(svc.spec.Name)
}

// dependents lists the running services that need name's package, directly or through others,
// in stop order: every service before the ones it depends on. The caller holds s.ops.
func (s *Supervisor) dependents(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[name]
	if svc == nil || svc.spec.Package == "" {
		return nil
	}
	users := map[string][]string{} // package -> running services that depend on it
	for n, o := range s.services {
		if o.held || n == name {
			continue
		}
		for _, dep := range o.spec.DependsOn {
			users[dep] = append(users[dep], n)
		}
	}
	for _, u := range users {
		sort.Strings(u)
	}
	var order []string
	seen := map[string]bool{name: true}
	var visit func(pkg string)
	visit = func(pkg string) {
		for _, n := range users[pkg] {
			if seen[n] {
				continue
			}
			seen[n] = true
			if p := s.services[n].spec.Package; p != "" {
				visit(p)
			}
			order = append(order, n) // after everything that depends on it
		}
	}
	visit(svc.spec.Package)
	return order
}

// hold stops the named services in the order given and keeps them registered, not running,
// until what they depend on starts again (resume).
func (s *Supervisor) hold(names []string) {
	for _, n := range names {
		svc := s.lookup(n)
		if svc == nil {
			continue
		}
		s.o.Logger.Info("stopping service before what it depends on", "service", n)
		s.end(svc)
		s.mu.Lock()
		svc.held = true
		s.mu.Unlock()
	}
}

// resume starts again the held services that depend on pkg and on nothing still held; each of
// them in turn brings back its own dependents once it is ready. The caller holds s.ops.
func (s *Supervisor) resume(pkg string) {
	if pkg == "" {
		return
	}
	started := []string{pkg}
	for len(started) > 0 {
		p := started[0]
		started = started[1:]
		for _, svc := range s.heldUsersOf(p) {
			next := newService(svc.spec)
			next.status.Restarts = svc.status.Restarts
			r, err := s.spawn(next)
			if err != nil {
				s.o.Logger.Error("cannot start a service again after what it depends on", "service", svc.spec.Name, "err", err)
				continue
			}
			s.mu.Lock()
			s.services[svc.spec.Name] = next
			s.mu.Unlock()
			go s.loop(next, r)
			if next.spec.Ready == nil {
				if next.spec.Package != "" {
					started = append(started, next.spec.Package)
				}
			} else {
				s.resumeWhenReady(next)
			}
		}
	}
}

// heldUsersOf lists, by name, the held services that depend on pkg and on nothing that is held
// itself.
func (s *Supervisor) heldUsersOf(pkg string) []*service {
	s.mu.Lock()
	defer s.mu.Unlock()
	heldPkg := map[string]bool{}
	for _, o := range s.services {
		if o.held && o.spec.Package != "" {
			heldPkg[o.spec.Package] = true
		}
	}
	var out []*service
	for _, o := range s.services {
		if !o.held || !slices.Contains(o.spec.DependsOn, pkg) {
			continue
		}
		ready := true
		for _, d := range o.spec.DependsOn {
			ready = ready && !heldPkg[d]
		}
		if ready {
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

func logTailMessage(path string, from int64) string {
	t := Tail(path, from, 10)
	if t == "" {
		return ""
	}
	return "; last lines of " + path + ":\n" + t
}

// Stop stops the named service (its stop signal to its process group, SIGKILL after the grace
// period) and forgets it. The running services that depend on it stop first, dependents before
// their dependencies, and stay registered but stopped until it starts again. Stopping an
// unknown service does nothing.
func (s *Supervisor) Stop(name string) error {
	s.ops.Lock()
	defer s.ops.Unlock()
	svc := s.lookup(name)
	if svc == nil {
		return nil
	}
	s.hold(s.dependents(name))
	s.end(svc)
	s.forget(name, svc)
	return nil
}

// Status reports the named service; Known is false for a service never started.
func (s *Supervisor) Status(name string) Status {
	s.mu.Lock()
	svc := s.services[name]
	s.mu.Unlock()
	if svc == nil {
		return Status{}
	}
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.status
}

// Spec returns the spec the named service runs with.
func (s *Supervisor) Spec(name string) (Spec, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[name]
	if svc == nil {
		return Spec{}, false
	}
	return svc.spec, true
}

// Names lists the services the supervisor runs (or holds), sorted.
func (s *Supervisor) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.services))
	for n := range s.services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// StopAll stops every service and forgets them all, in reverse dependency order: at each step
// the services nothing left depends on stop together, so independent services stop in
// parallel and no server goes before its clients.
func (s *Supervisor) StopAll() {
	s.ops.Lock()
	defer s.ops.Unlock()
	for _, wave := range s.stopWaves() {
		var wg sync.WaitGroup
		for _, svc := range wave {
			wg.Go(func() {
				s.end(svc)
				s.forget(svc.spec.Name, svc)
			})
		}
		wg.Wait()
	}
}

// stopWaves groups the registered services into the waves StopAll stops them in.
func (s *Supervisor) stopWaves() [][]*service {
	s.mu.Lock()
	left := make(map[string]*service, len(s.services))
	for n, svc := range s.services {
		left[n] = svc
	}
	s.mu.Unlock()
	var waves [][]*service
	for len(left) > 0 {
		needed := map[string]bool{} // packages some service left depends on
		for _, svc := range left {
			for _, d := range svc.spec.DependsOn {
				needed[d] = true
			}
		}
		var wave []*service
		for _, svc := range left {
			if svc.spec.Package == "" || !needed[svc.spec.Package] {
				wave = append(wave, svc)
			}
		}
		if len(wave) == 0 { // a dependency cycle: stop the rest together
			for _, svc := range left {
				wave = append(wave, svc)
			}
		}
		sort.Slice(wave, func(i, j int) bool { return wave[i].spec.Name < wave[j].spec.Name })
		for _, svc := range wave {
			delete(left, svc.spec.Name)
		}
		waves = append(waves, wave)
	}
	return waves
}

// Close stops every service and the supervisor itself.
func (s *Supervisor) Close() {
	s.StopAll()
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.done
}

// loop waits for each run to end and starts the next as the restart policy says.
func (s *Supervisor) loop(svc *service, r *run) {
	defer close(svc.over)
	backoff := s.o.MinBackoff
	for {
		<-r.exited
		// Whatever the leader left in its group goes with it.
		_ = syscall.Kill(-r.pid, syscall.SIGKILL)
		exit := describeExit(r.err)
		svc.mu.Lock()
		svc.status.Running, svc.status.PID = false, 0
		svc.status.LastExit, svc.status.LastExitAt = exit, time.Now()
		svc.mu.Unlock()

		select {
		case <-svc.stop:
			return
		default:
		}
		if svc.spec.RestartPolicy == RestartOnFailure && r.err == nil {
			s.o.Logger.Info("service exited successfully; not restarting (OnFailure)", "service", svc.spec.Name)
			<-svc.stop
			return
		}
		if time.Since(r.started) >= s.o.StableAfter {
			backoff = s.o.MinBackoff
		}
		s.o.Logger.Warn("service exited; restarting", "service", svc.spec.Name, "exit", exit, "backoff", backoff)
		for {
			timer := time.NewTimer(backoff)
			select {
			case <-svc.stop:
				timer.Stop()
				return
			case <-timer.C:
			}
			backoff = min(backoff*2, s.o.MaxBackoff)
			next, err := s.spawn(svc)
			if err != nil {
				s.o.Logger.Error("service restart failed", "service", svc.spec.Name, "err", err)
				continue
			}
			r = next
			svc.mu.Lock()
			svc.status.Restarts++
			svc.mu.Unlock()
			break
		}
	}
}

// spawn starts one run of svc. Closing svc.stop ends it.
func (s *Supervisor) spawn(svc *service) (*run, error) {
	spec := svc.spec
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	rotate(spec.LogPath, s.o.MaxLogBytes)
	logFile, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	// The child keeps its own descriptor: its output survives an agent that dies first.
	defer logFile.Close()
	fmt.Fprintf(logFile, "=== %s kok-agent starts %s %s\n", time.Now().UTC().Format(time.RFC3339), spec.Path, strings.Join(spec.Args, " "))
	logStart, _ := logFile.Seek(0, io.SeekEnd)

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.o.DieWithAgent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := startOnStableThread(cmd); err != nil {
		return nil, err
	}
	r := &run{pid: cmd.Process.Pid, started: time.Now(), logStart: logStart, exited: make(chan struct{})}
	svc.mu.Lock()
	svc.status.Running, svc.status.PID, svc.status.StartedAt = true, r.pid, r.started
	svc.mu.Unlock()
	s.writePidFile(spec.Name, r.pid)
	s.o.Logger.Info("service started", "service", spec.Name, "pid", r.pid)

	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()
	go func() {
		select {
		case <-svc.stop:
			s.terminate(spec, r)
		case <-r.exited:
		}
	}()
	return r, nil
}

// terminate ends one run: its stop signal (SIGTERM) to its group, SIGKILL after its grace period.
func (s *Supervisor) terminate(spec Spec, r *run) {
	sig, grace := spec.StopSignal, spec.StopGrace
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if grace <= 0 {
		grace = s.o.StopGrace
	}
	_ = syscall.Kill(-r.pid, sig)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-r.exited:
		return
	case <-timer.C:
	}
	s.o.Logger.Warn("service did not stop on its stop signal; killing it", "service", spec.Name, "pid", r.pid, "signal", sig, "grace", grace)
	_ = syscall.Kill(-r.pid, syscall.SIGKILL)
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may itself contain ')'.
	i := strings.LastIndexByte(string(data), ')')
	return i >= 0 && i+2 < len(data) && data[i+2] != 'Z'
}

// startTime is the process's start time in clock ticks since boot, which together with the pid
// names one process for good (pids are reused).
func startTime(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(data[i+1:]))
	// Fields after the name start at field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

func (s *Supervisor) pidFile(name string) string {
	if s.o.RunDir == "" {
		return ""
	}
	return filepath.Join(s.o.RunDir, name+".pid")
}

func (s *Supervisor) writePidFile(name string, pid int) {
	p := s.pidFile(name)
	if p == "" {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
		_ = os.WriteFile(p, []byte(strconv.Itoa(pid)+" "+startTime(pid)+"\n"), 0o644)
	}
}

func (s *Supervisor) removePidFile(name string) {
	if p := s.pidFile(name); p != "" {
		_ = os.Remove(p)
	}
}

// clearLeftover ends a process a previous agent started for this service and did not stop (the
// parent-death signal normally sees to that): the pid file names it, and its start time proves
// the pid was not reused since.
func (s *Supervisor) clearLeftover(name string) {
	p := s.pidFile(name)
	if p == "" {
		return
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 1 || startTime(pid) != fields[1] || !alive(pid) {
		return
	}
	s.o.Logger.Warn("stopping a leftover process of a previous agent", "service", name, "pid", pid)
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	// Not our child: nothing to wait on but the process table.
	for deadline := time.Now().Add(s.o.StopGrace); time.Now().Before(deadline) && alive(pid); {
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// rotate moves a log larger than max to <log>.1.
func rotate(path string, max int64) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > max {
		_ = os.Rename(path, path+".1")
	}
}

// rotateLoop keeps the logs of long-running services bounded: it copies a log grown past the
// limit to <log>.1 and truncates it. The child writes with O_APPEND, so its next line lands at
// the new end; lines written between the copy and the truncation are lost, a price paid once
// per rotation.
func (s *Supervisor) rotateLoop() {
	defer close(s.done)
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		paths := make([]string, 0, len(s.services))
		for _, svc := range s.services {
			paths = append(paths, svc.spec.LogPath)
		}
		s.mu.Unlock()
		for _, p := range paths {
			copyTruncate(p, s.o.MaxLogBytes)
		}
	}
}

func copyTruncate(path string, max int64) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() <= max {
		return
	}
	src, err := os.Open(path)
	if err != nil {
		return
	}
	defer src.Close()
	dst, err := os.Create(path + ".1")
	if err != nil {
		return
	}
	_, err = io.Copy(dst, src)
	dst.Close()
	if err == nil {
		_ = os.Truncate(path, 0)
	}
}

// Tail returns the last n lines of the file at path after byte offset from ("" if unreadable).
func Tail(path string, from int64, n int) string {
	const window = 16 << 10
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if from > fi.Size() { // truncated by rotation since
		from = 0
	}
	off := max(fi.Size()-window, from)
	data := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(data, off); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	text := strings.TrimRight(string(data), "\n")
	if text == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	if off > from && len(lines) > 1 {
		lines = lines[1:] // probably cut
	}
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// Children are forked from one goroutine locked to an OS thread that lives as long as the
// agent: the parent-death signal fires when the forking thread ends, and Go retires threads.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

func startOnStableThread(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked
			for r := range spawnReqs {
				r.res <- r.cmd.Start()
			}
		}()
	})
	res := make(chan error, 1)
	spawnReqs <- spawnReq{cmd: cmd, res: res}
	return <-res
}
