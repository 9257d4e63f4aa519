package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// helperEnv makes the test binary act as a parent that starts one child and waits forever,
// so a test can kill that parent and watch what happens to the child.
const helperEnv = "KOK_SUPERVISOR_TEST_PARENT"

func TestMain(m *testing.M) {
	if logDir := os.Getenv(helperEnv); logDir != "" {
		p, err := Start(Spec{Name: "sleeper", Path: "/bin/sleep", Args: []string{"1000"}, LogPath: filepath.Join(logDir, "sleeper.log")})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(p.Pid())
		select {}
	}
	os.Exit(m.Run())
}

func shell(t *testing.T, name, script string) Spec {
	return Spec{Name: name, Path: "/bin/sh", Args: []string{"-c", script}, LogPath: filepath.Join(t.TempDir(), name+".log")}
}

// waitForLine waits until the log has a line that is exactly line (the log header quotes the
// script, so a substring match would fire too early).
func waitForLine(t *testing.T, path, line string) {
	t.Helper()
	require.Eventually(t, func() bool {
		return slices.Contains(strings.Split(tail(path, 0, 10), "\n"), line)
	}, 10*time.Second, 10*time.Millisecond, "%s never logged %q", path, line)
}

// alive reports whether pid is a live process; zombies count as dead because nothing may
// reap them inside a container.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestStopTerminatesAndLogs(t *testing.T) {
	spec := shell(t, "talker", "echo hello; exec sleep 1000")
	p, err := Start(spec)
	require.NoError(t, err)
	waitForLine(t, spec.LogPath, "hello")

	require.NoError(t, p.Stop(10*time.Second))
	<-p.Done()
	require.False(t, alive(p.Pid()))
	log, err := os.ReadFile(spec.LogPath)
	require.NoError(t, err)
	require.Contains(t, string(log), "kok dev starts /bin/sh")
}

func TestStopKillsAfterGrace(t *testing.T) {
	p, err := Start(shell(t, "stubborn", `trap "" TERM; echo ready; while :; do sleep 1; done`))
	require.NoError(t, err)
	waitForLine(t, p.LogPath(), "ready")

	err = p.Stop(200 * time.Millisecond)
	require.ErrorContains(t, err, "stubborn did not stop")
	<-p.Done()
}

func TestExitErrorShowsOnlyThisRun(t *testing.T) {
	spec := shell(t, "twice", "echo run-output; exit 1")
	for range 2 {
		p, err := Start(spec)
		require.NoError(t, err)
		<-p.Done()
		require.Equal(t, 1, strings.Count(p.ExitError().Tail, "run-output"), "tail: %q", p.ExitError().Tail)
	}
}

func TestGroupReportsUnexpectedExit(t *testing.T) {
	g := NewGroup()
	_, err := g.Start(shell(t, "steady", "exec sleep 1000"))
	require.NoError(t, err)
	_, err = g.Start(shell(t, "crasher", "echo something broke >&2; exit 3"))
	require.NoError(t, err)

	select {
	case exit := <-g.Exited():
		require.Equal(t, "crasher", exit.Name)
		require.Contains(t, exit.Tail, "something broke")
		require.Contains(t, exit.Error(), "crasher exited unexpectedly (exit status 3)")
		var exitErr *exec.ExitError
		require.True(t, errors.As(exit, &exitErr))
	case <-time.After(30 * time.Second):
		t.Fatal("the crash was not reported")
	}
	require.NoError(t, g.Stop(10*time.Second))
}

func TestGroupStopsInReverseOrderWithoutReportingExits(t *testing.T) {
	order := filepath.Join(t.TempDir(), "order")
	g := NewGroup()
	for _, name := range []string{"first", "second", "third"} {
		script := fmt.Sprintf(`trap 'echo %s >> %s; exit 0' TERM; echo up; while :; do sleep 1; done`, name, order)
		p, err := g.Start(shell(t, name, script))
		require.NoError(t, err)
		waitForLine(t, p.LogPath(), "up")
	}
	require.NoError(t, g.Stop(10*time.Second))
	data, err := os.ReadFile(order)
	require.NoError(t, err)
	require.Equal(t, "third\nsecond\nfirst\n", string(data))
	select {
	case exit := <-g.Exited():
		t.Fatalf("a stopped child was reported as crashed: %v", exit)
	default:
	}
}

func TestChildDiesWithKilledParent(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(os.Environ(), helperEnv+"="+t.TempDir())
	stdout, err := parent.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, parent.Start())
	t.Cleanup(func() { _ = parent.Process.Kill(); _ = parent.Wait() })

	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	childPid, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err, "helper said %q", line)
	require.True(t, alive(childPid))

	require.NoError(t, parent.Process.Signal(syscall.SIGKILL))
	require.Eventually(t, func() bool { return !alive(childPid) }, 10*time.Second, 10*time.Millisecond,
		"child %d outlived its killed parent", childPid)
}

func TestTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	require.Equal(t, "line 4997\nline 4998\nline 4999", tail(path, 0, 3))
	require.Equal(t, "line 4999", tail(path, int64(b.Len()-len("line 4999\n")), 3), "nothing before the offset")
	require.Empty(t, tail(path, int64(b.Len()), 3))
	require.Empty(t, tail(filepath.Join(t.TempDir(), "missing"), 0, 3))
}
