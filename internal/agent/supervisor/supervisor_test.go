package supervisor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// parentEnv makes the test binary act as an agent that starts one service and waits forever, so
// a test can kill that "agent" and watch its service die with it.
const parentEnv = "KOK_AGENT_SUPERVISOR_TEST_PARENT"

func TestMain(m *testing.M) {
	if dir := os.Getenv(parentEnv); dir != "" {
		s := New(Options{RunDir: dir, DieWithAgent: true})
		if err := s.Start(context.Background(), sleeper(dir, "child"), 0); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(s.Status("child").PID)
		select {}
	}
	os.Exit(m.Run())
}

func sleeper(dir, name string) Spec {
	return Spec{Name: name, Path: "/bin/sleep", Args: []string{"1000"}, LogPath: filepath.Join(dir, name+".log"), RestartPolicy: RestartAlways}
}

func shell(dir, name, script string, policy RestartPolicy) Spec {
	return Spec{Name: name, Path: "/bin/sh", Args: []string{"-c", script}, LogPath: filepath.Join(dir, name+".log"), RestartPolicy: policy}
}

func fast(t *testing.T) *Supervisor {
	s := New(Options{RunDir: filepath.Join(t.TempDir(), "run"), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, StopGrace: 2 * time.Second})
	t.Cleanup(s.Close)
	return s
}

func TestStartStop(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	require.NoError(t, s.Start(context.Background(), sleeper(dir, "svc"), 50*time.Millisecond))
	st := s.Status("svc")
	require.True(t, st.Known)
	require.True(t, st.Running)
	require.True(t, alive(st.PID))
	pgid, err := syscall.Getpgid(st.PID)
	require.NoError(t, err)
	require.Equal(t, st.PID, pgid, "each service leads its own process group")
	require.FileExists(t, filepath.Join(s.o.RunDir, "svc.pid"))
	require.Equal(t, []string{"svc"}, s.Names())

	require.NoError(t, s.Stop("svc"))
	require.False(t, alive(st.PID))
	require.False(t, s.Status("svc").Known)
	require.NoFileExists(t, filepath.Join(s.o.RunDir, "svc.pid"))
	log, err := os.ReadFile(filepath.Join(dir, "svc.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), "kok-agent starts /bin/sleep 1000")
}

func TestRestartsAfterKill(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	require.NoError(t, s.Start(context.Background(), sleeper(dir, "svc"), 0))
	first := s.Status("svc").PID
	require.NoError(t, syscall.Kill(first, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		st := s.Status("svc")
		return st.Running && st.PID != first && st.Restarts == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "signal: killed", s.Status("svc").LastExit)
}

func TestOnFailurePolicy(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	require.NoError(t, s.Start(context.Background(), shell(dir, "ok", "exit 0", RestartOnFailure), 0))
	require.Eventually(t, func() bool { return s.Status("ok").LastExit == "exit status 0" }, 10*time.Second, 10*time.Millisecond)
	st := s.Status("ok")
	require.False(t, st.Running)
	require.Zero(t, st.Restarts, "a clean exit is not restarted under OnFailure")

	require.NoError(t, s.Start(context.Background(), shell(dir, "bad", "exit 4", RestartOnFailure), 0))
	require.Eventually(t, func() bool { return s.Status("bad").Restarts >= 2 }, 10*time.Second, 10*time.Millisecond)
	require.Equal(t, "exit status 4", s.Status("bad").LastExit)
}

func TestStartFailsWhenServiceDiesAtOnce(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	err := s.Start(context.Background(), shell(dir, "crash", "echo 'cannot bind :10250'; exit 3", RestartAlways), 5*time.Second)
	require.ErrorContains(t, err, "service crash exited within 5s of starting (exit status 3)")
	require.ErrorContains(t, err, "cannot bind :10250")

	err = s.Start(context.Background(), Spec{Name: "nope", Path: filepath.Join(dir, "missing"), LogPath: filepath.Join(dir, "nope.log")}, time.Second)
	require.ErrorContains(t, err, "start service nope")
}

func TestStartReplacesRunningInstance(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	require.NoError(t, s.Start(context.Background(), sleeper(dir, "svc"), 0))
	old := s.Status("svc").PID
	spec := sleeper(dir, "svc")
	spec.Args = []string{"999"}
	require.NoError(t, s.Start(context.Background(), spec, 0))
	require.False(t, alive(old))
	got, ok := s.Spec("svc")
	require.True(t, ok)
	require.True(t, got.Equal(spec))
	require.Zero(t, s.Status("svc").Restarts)
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	dir := t.TempDir()
	s := New(Options{StopGrace: 200 * time.Millisecond})
	t.Cleanup(s.Close)
	require.NoError(t, s.Start(context.Background(), shell(dir, "stubborn", "trap '' TERM; echo ready; while :; do sleep 1; done", RestartAlways), 0))
	require.Eventually(t, func() bool { return strings.Contains(Tail(filepath.Join(dir, "stubborn.log"), 0, 1), "ready") }, 10*time.Second, 10*time.Millisecond)
	pid := s.Status("stubborn").PID
	require.NoError(t, s.Stop("stubborn"))
	require.False(t, alive(pid))
}

func TestServicesDieWithAgent(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), parentEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	child, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err, "parent said %q", line)
	require.True(t, alive(child))

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool { return !alive(child) }, 10*time.Second, 10*time.Millisecond,
		"a service outlived its killed agent")
}

func TestNewAgentClearsLeftover(t *testing.T) {
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	// A process a previous agent started and never stopped.
	old := exec.Command("/bin/sleep", "1000")
	old.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, old.Start())
	exited := make(chan struct{})
	go func() { _ = old.Wait(); close(exited) }()
	t.Cleanup(func() { _ = old.Process.Kill() })
	require.NoError(t, os.MkdirAll(runDir, 0o755))
	pid := old.Process.Pid
	require.NoError(t, os.WriteFile(filepath.Join(runDir, "svc.pid"), []byte(fmt.Sprintf("%d %s\n", pid, startTime(pid))), 0o644))

	s := New(Options{RunDir: runDir, StopGrace: 2 * time.Second})
	t.Cleanup(s.Close)
	require.NoError(t, s.Start(context.Background(), sleeper(dir, "svc"), 0))
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the leftover process was not stopped")
	}
	require.NotEqual(t, pid, s.Status("svc").PID)
}

func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "svc.log")
	require.NoError(t, os.WriteFile(logPath, []byte(strings.Repeat("x", 2048)), 0o644))
	s := New(Options{MaxLogBytes: 1024})
	t.Cleanup(s.Close)
	require.NoError(t, s.Start(context.Background(), sleeper(dir, "svc"), 0))
	fi, err := os.Stat(logPath + ".1")
	require.NoError(t, err)
	require.EqualValues(t, 2048, fi.Size())

	copyTruncate(logPath, 10)
	fi, err = os.Stat(logPath)
	require.NoError(t, err)
	require.Zero(t, fi.Size())
	old, err := os.ReadFile(logPath + ".1")
	require.NoError(t, err)
	require.Contains(t, string(old), "kok-agent starts")
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	require.NoError(t, os.WriteFile(p, []byte("a\nb\nc\nd\n"), 0o644))
	require.Equal(t, "c\nd", Tail(p, 0, 2))
	require.Equal(t, "d", Tail(p, 6, 5))
	require.Equal(t, "a\nb\nc\nd", Tail(p, 100, 5), "an offset past the end (the log was truncated) reads from the start")
	require.Empty(t, Tail(filepath.Join(t.TempDir(), "none"), 0, 3))
}

// member is a service of package name that, on SIGTERM, appends its name to dir/order and
// exits; it marks itself up (dir/<name>.<pid>) once its trap is set.
func member(dir, name string, deps ...string) Spec {
	script := fmt.Sprintf("trap 'echo %[2]s >> %[1]s/order; exit 0' TERM; touch %[1]s/%[2]s.$$; while :; do sleep 0.02; done", dir, name)
	spec := shell(dir, name, script, RestartAlways)
	spec.Package, spec.DependsOn = name, deps
	return spec
}

// waitUp waits until the named services run and have set their traps.
func waitUp(t *testing.T, s *Supervisor, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		require.Eventually(t, func() bool {
			st := s.Status(n)
			if !st.Running {
				return false
			}
			_, err := os.Stat(filepath.Join(dir, n+"."+strconv.Itoa(st.PID)))
			return err == nil
		}, 10*time.Second, 10*time.Millisecond, "%s up", n)
	}
}

// stopOrder returns and clears the order the members stopped in.
func stopOrder(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "order"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir, "order")))
	return strings.Fields(string(data))
}

// A chain like etcd <- kube-apiserver <- controller-manager, plus an independent service.
func startChain(t *testing.T, s *Supervisor, dir string) {
	t.Helper()
	ctx := context.Background()
	for _, spec := range []Spec{member(dir, "db"), member(dir, "api", "db"), member(dir, "ctl", "api"), member(dir, "web", "api"), member(dir, "other")} {
		require.NoError(t, s.Start(ctx, spec, 0))
	}
	waitUp(t, s, dir, "db", "api", "ctl", "web", "other")
}

func TestStopStopsDependentsFirstAndStartBringsThemBack(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	startChain(t, s, dir)
	apiPID := s.Status("api").PID

	require.NoError(t, s.Stop("db"))
	require.Equal(t, []string{"ctl", "web", "api", "db"}, stopOrder(t, dir), "dependents first, each before what it depends on")
	require.False(t, s.Status("db").Known)
	for _, n := range []string{"api", "ctl", "web"} {
		st := s.Status(n)
		require.True(t, st.Known, "%s is held, not forgotten", n)
		require.False(t, st.Running, n)
	}
	require.True(t, s.Status("other").Running, "an independent service is left alone")

	require.NoError(t, s.Start(context.Background(), member(dir, "db"), 0))
	waitUp(t, s, dir, "db", "api", "ctl", "web")
	require.NotEqual(t, apiPID, s.Status("api").PID)
	require.Zero(t, s.Status("api").Restarts, "a start after a dependency is not a failure restart")
}

func TestReplacingAServiceRestartsItsDependents(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	startChain(t, s, dir)
	ctlPID, otherPID := s.Status("ctl").PID, s.Status("other").PID

	require.NoError(t, s.Start(context.Background(), member(dir, "api", "db"), 0))
	require.Equal(t, []string{"ctl", "web", "api"}, stopOrder(t, dir))
	waitUp(t, s, dir, "db", "api", "ctl", "web")
	require.NotEqual(t, ctlPID, s.Status("ctl").PID)
	require.Equal(t, otherPID, s.Status("other").PID)
}

func TestStopAllStopsInReverseDependencyOrder(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	startChain(t, s, dir)
	s.StopAll()
	order := stopOrder(t, dir)
	require.Len(t, order, 5)
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	require.Less(t, pos["ctl"], pos["api"])
	require.Less(t, pos["web"], pos["api"])
	require.Less(t, pos["api"], pos["db"])
	require.Empty(t, s.Names())
}

func TestPerServiceStopSignalAndGrace(t *testing.T) {
	dir := t.TempDir()
	s := New(Options{RunDir: filepath.Join(dir, "run"), StopGrace: time.Hour})
	t.Cleanup(s.Close)
	ctx := context.Background()

	// Stops on SIGINT only, as asked.
	intr := shell(dir, "intr", "trap '' TERM; trap 'exit 0' INT; touch "+dir+"/intr.$$; while :; do sleep 0.02; done", RestartAlways)
	intr.StopSignal = syscall.SIGINT
	require.NoError(t, s.Start(ctx, intr, 0))
	waitUp(t, s, dir, "intr")
	require.NoError(t, s.Stop("intr"))

	// Ignores its stop signal: killed after its own grace, not the supervisor's hour.
	deaf := shell(dir, "deaf", "trap '' TERM; touch "+dir+"/deaf.$$; while :; do sleep 0.02; done", RestartAlways)
	deaf.StopGrace = 100 * time.Millisecond
	require.NoError(t, s.Start(ctx, deaf, 0))
	waitUp(t, s, dir, "deaf")
	pid := s.Status("deaf").PID
	require.NoError(t, s.Stop("deaf"))
	require.False(t, alive(pid))
}

func TestDependentsWaitForReady(t *testing.T) {
	dir := t.TempDir()
	s := fast(t)
	startChain(t, s, dir)
	var ready atomic.Bool
	var asked atomic.Int32
	db := member(dir, "db")
	db.Ready = func(context.Context) error {
		asked.Add(1)
		if !ready.Load() {
			return errors.New("not yet")
		}
		return nil
	}
	require.NoError(t, s.Start(context.Background(), db, 0))
	require.Equal(t, []string{"ctl", "web", "api", "db"}, stopOrder(t, dir))
	waitUp(t, s, dir, "db")
	require.Eventually(t, func() bool { return asked.Load() >= 3 }, 10*time.Second, 10*time.Millisecond)
	require.False(t, s.Status("api").Running, "api waits for db to be ready")
	ready.Store(true)
	waitUp(t, s, dir, "api", "ctl", "web")
}

func TestDependentsStartAnywayAfterReadyTimeout(t *testing.T) {
	dir := t.TempDir()
	s := New(Options{RunDir: filepath.Join(dir, "run"), StopGrace: 2 * time.Second, ReadyTimeout: 200 * time.Millisecond})
	t.Cleanup(s.Close)
	startChain(t, s, dir)
	db := member(dir, "db")
	db.Ready = func(context.Context) error { return errors.New("never") }
	require.NoError(t, s.Start(context.Background(), db, 0))
	waitUp(t, s, dir, "api", "ctl", "web")
}
