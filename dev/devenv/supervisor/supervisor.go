package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TailLines is how many log lines an ExitError carries.
const TailLines = 20

// Spec says how to run one child.
type Spec struct {
	// Name identifies the child in messages ("etcd", "kube-apiserver", ...).
	Name string
	Path string
	Args []string
	// LogPath receives the child's stdout and stderr, appended across runs.
	LogPath string
}

// Process is a running child.
type Process struct {
	spec     Spec
	logStart int64 // where this run's output begins in the log
	cmd      *exec.Cmd
	done     chan struct{}
	err      error
	stopping atomic.Bool
}

// ExitError reports a child that exited without being asked to.
type ExitError struct {
	Name    string
	LogPath string
	Err     error
	// Tail is the end of the child's log, which usually says why.
	Tail string
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s exited unexpectedly (%v); log: %s", e.Name, e.Err, e.LogPath)
	if e.Tail != "" {
		msg += "\n--- last lines of " + e.LogPath + " ---\n" + e.Tail
	}
	return msg
}

func (e *ExitError) Unwrap() error { return e.Err }

// Start runs the child described by spec.
func Start(spec Spec) (*Process, error) {
	if spec.Name == "" || spec.Path == "" || spec.LogPath == "" {
		return nil, fmt.Errorf("supervisor: spec needs a name, a path and a log path: %+v", spec)
	}
	if err := os.MkdirAll(filepath.Dir(spec.LogPath), 0o755); err != nil {
		return nil, fmt.Errorf("create log dir for %s: %w", spec.Name, err)
	}
	logFile, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", spec.Name, err)
	}
	// The child holds its own copy of the descriptor.
	defer func() { _ = logFile.Close() }()
	header := fmt.Sprintf("\n=== %s: kok dev starts %s %s\n",
		time.Now().Format(time.RFC3339), spec.Path, strings.Join(spec.Args, " "))
	if _, err := io.WriteString(logFile, header); err != nil {
		return nil, fmt.Errorf("write log of %s: %w", spec.Name, err)
	}
	logStart, err := logFile.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("log of %s: %w", spec.Name, err)
	}

	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a terminal's Ctrl-C reaches only kok, which stops children in
		// order, and Stop can signal whatever the child itself spawned.
		Setpgid: true,
		// If kok dies without cleaning up (SIGKILL, crash), the kernel kills the child.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Path, err)
	}
	p := &Process{spec: spec, logStart: logStart, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Name is the child's name from its Spec.
func (p *Process) Name() string { return p.spec.Name }

// LogPath is where the child's output goes.
func (p *Process) LogPath() string { return p.spec.LogPath }

// Pid is the child's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitError describes how the child ended; call it after Done is closed.
func (p *Process) ExitError() *ExitError {
	err := p.err
	if err == nil {
		err = errors.New("exit status 0")
	}
	return &ExitError{Name: p.spec.Name, LogPath: p.spec.LogPath, Err: err, Tail: p.LogTail(TailLines)}
}

// LogTail returns the last n lines the child wrote in this run (earlier runs share the file).
func (p *Process) LogTail(n int) string { return tail(p.spec.LogPath, p.logStart, n) }

// Stop sends SIGTERM to the child's process group and SIGKILL if it is still there after
// grace. It returns an error only when the child had to be killed.
func (p *Process) Stop(grace time.Duration) error {
	p.stopping.Store(true)
	pgid := p.Pid()
	// Leftovers of the group (children of the child) go too, whatever the leader did.
	defer func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }()
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("%s did not stop within %s after SIGTERM and was killed", p.spec.Name, grace)
}

// Group runs children and stops them in reverse start order.
type Group struct {
	mu     sync.Mutex
	procs  []*Process
	exited chan *ExitError
	report func(*ExitError)
}

// NewGroup returns an empty group whose first unexpected exit Exited delivers.
func NewGroup() *Group {
	return &Group{exited: make(chan *ExitError, 1)}
}

// NewReportingGroup returns an empty group for children whose exit does not end the system:
// every child that exits without being stopped is passed to report, once, and Exited never
// delivers.
func NewReportingGroup(report func(*ExitError)) *Group {
	return &Group{exited: make(chan *ExitError, 1), report: report}
}

// Start runs a child as part of the group.
func (g *Group) Start(spec Spec) (*Process, error) {
	p, err := Start(spec)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.procs = append(g.procs, p)
	g.mu.Unlock()
	go func() {
		<-p.done
		if p.stopping.Load() {
			return
		}
		if g.report != nil {
			g.report(p.ExitError())
			return
		}
		select {
		case g.exited <- p.ExitError():
		default: // the first unexpected exit is the one to report
		}
	}()
	return p, nil
}

// Exited delivers the first child that exited without being stopped.
func (g *Group) Exited() <-chan *ExitError { return g.exited }

// Stop stops every child, last started first, each with the given grace period.
func (g *Group) Stop(grace time.Duration) error {
	g.mu.Lock()
	procs := slices.Clone(g.procs)
	g.procs = nil
	g.mu.Unlock()
	var errs []error
	for _, p := range slices.Backward(procs) {
		if err := p.Stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StopAll stops every child at once, each with the given grace period: for children that
// do not depend on each other, whose stops would only add up one after the other.
func (g *Group) StopAll(grace time.Duration) error {
	g.mu.Lock()
	procs := slices.Clone(g.procs)
	g.procs = nil
	g.mu.Unlock()
	errs := make([]error, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() { errs[i] = p.Stop(grace) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tail returns the last n lines of the file at path after byte offset from, or "" when it
// cannot be read.
func tail(path string, from int64, n int) string {
	const window = 32 << 10
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return ""
	}
	offset := max(info.Size()-window, from, 0)
	data := make([]byte, info.Size()-offset)
	if _, err := f.ReadAt(data, offset); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	text := strings.TrimRight(string(data), "\n")
	if text == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	if offset > from && len(lines) > 1 {
		lines = lines[1:] // the first line is probably cut
	}
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// spawnRequests is served by one goroutine locked to its OS thread for the life of the
// process. Pdeathsig fires when the thread that forked the child exits, not the process;
// Go may retire threads, so children are forked from a thread that never goes away.
var (
	spawnOnce     sync.Once
	spawnRequests chan spawnRequest
)

type spawnRequest struct {
	cmd    *exec.Cmd
	result chan error
}

func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnRequests = make(chan spawnRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as kok
			for req := range spawnRequests {
				req.result <- req.cmd.Start()
			}
		}()
	})
	result := make(chan error, 1)
	spawnRequests <- spawnRequest{cmd: cmd, result: result}
	return <-result
}
