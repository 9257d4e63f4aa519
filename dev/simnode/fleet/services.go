package fleet

import (
	"context"
	"fmt"
	"sync"
	"time"

	"kok.dev/activities/host"
	"kok.dev/internal/agent/supervisor"
)

// SimulatedServices is the service manager of a fleet host: it behaves like kok-agent's
// supervisor (start replaces a running instance and waits out the settle time, stop forgets the
// service, status reports running, start time and restart count, a started service runs until it
// is stopped or crashed) but starts no process. It simulates only the process; everything the
// host activities do around it (files, state, configs, journal, checksums) is real.
type SimulatedServices struct {
	mu       sync.Mutex
	services map[string]*simulated
	nextPID  int
}

type simulated struct {
	spec   supervisor.Spec
	status supervisor.Status
}

var _ host.ServiceManager = (*SimulatedServices)(nil)

// NewSimulatedServices returns a service manager with nothing running.
func NewSimulatedServices() *SimulatedServices {
	return &SimulatedServices{services: map[string]*simulated{}, nextPID: 1000}
}

// Start "runs" spec, replacing an instance of the same name. Like the supervisor it returns only
// once the service has kept running for settle (a simulated one always does), or when ctx ends.
func (s *SimulatedServices) Start(ctx context.Context, spec supervisor.Spec, settle time.Duration) error {
	if spec.Name == "" || spec.Path == "" || spec.LogPath == "" {
		return fmt.Errorf("service spec needs a name, a program and a log path (got name %q, program %q)", spec.Name, spec.Path)
	}
	s.mu.Lock()
	s.nextPID++
	s.services[spec.Name] = &simulated{spec: spec, status: supervisor.Status{
		Known: true, Running: true, PID: s.nextPID, StartedAt: time.Now(),
	}}
	s.mu.Unlock()
	if settle <= 0 {
		return nil
	}
	timer := time.NewTimer(settle)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop stops and forgets the named service; stopping an unknown one succeeds.
func (s *SimulatedServices) Stop(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.services, name)
	return nil
}

// Status reports the named service; Known is false for one never started (or stopped).
func (s *SimulatedServices) Status(name string) supervisor.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.services[name]; svc != nil {
		return svc.status
	}
	return supervisor.Status{}
}

// Spec returns the spec the named service runs with.
func (s *SimulatedServices) Spec(name string) (supervisor.Spec, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if svc := s.services[name]; svc != nil {
		return svc.spec, true
	}
	return supervisor.Spec{}, false
}

// Crash makes the named service exit with status 1, as a crashing process would. The supervisor
// restarts such a service (both restart policies restart a failure), so it runs again with one
// more restart counted; Crash reports whether the service was running.
func (s *SimulatedServices) Crash(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	svc := s.services[name]
	if svc == nil || !svc.status.Running {
		return false
	}
	now := time.Now()
	s.nextPID++
	svc.status.LastExit, svc.status.LastExitAt = "exit status 1", now
	svc.status.Restarts++
	svc.status.PID, svc.status.StartedAt = s.nextPID, now
	return true
}

// Running counts the services that run.
func (s *SimulatedServices) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, svc := range s.services {
		if svc.status.Running {
			n++
		}
	}
	return n
}
