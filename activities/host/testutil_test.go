package host

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"kok.dev/contract/hostapi"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"kok.dev/internal/agent/state"
	"kok.dev/internal/agent/supervisor"
)

// host is a simulated host for one test: a root, a supervisor and the activities.
type testHost struct {
	t    *testing.T
	root string
	sup  *supervisor.Supervisor
	a    *Activities
	env  *testsuite.TestActivityEnvironment
}

type hostOption func(*supervisor.Options)

// slowRestarts keeps a killed service down long enough to see it down.
func slowRestarts(o *supervisor.Options) { o.MinBackoff, o.MaxBackoff = time.Hour, time.Hour }

func newHost(t *testing.T, root string, opts ...hostOption) *testHost {
	t.Helper()
	o := supervisor.Options{RunDir: filepath.Join(root, RunDir), MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, StopGrace: 5 * time.Second, DieWithAgent: true}
	for _, opt := range opts {
		opt(&o)
	}
	sup := supervisor.New(o)
	t.Cleanup(sup.Close)
	a := &Activities{Host: "w1", Root: root, Simulate: true, Services: sup, SettleTime: 300 * time.Millisecond}
	var s testsuite.WorkflowTestSuite
	s.SetLogger(log.NewStructuredLogger(slog.New(slog.DiscardHandler))) // failures speak through require
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return &testHost{t: t, root: root, sup: sup, a: a, env: env}
}

func (h *testHost) ensure(spec hostapi.PackageSpec) (hostapi.EnsurePackageResult, error) {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(h.a.EnsurePackage, hostapi.EnsurePackageParams{Spec: spec})
	if err != nil {
		return hostapi.EnsurePackageResult{}, err
	}
	var res hostapi.EnsurePackageResult
	require.NoError(h.t, val.Get(&res))
	return res, nil
}

func (h *testHost) mustEnsure(spec hostapi.PackageSpec) hostapi.EnsurePackageResult {
	h.t.Helper()
	res, err := h.ensure(spec)
	require.NoError(h.t, err)
	return res
}

func (h *testHost) remove(name string) hostapi.RemovePackageResult {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(h.a.RemovePackage, hostapi.RemovePackageParams{Name: name})
	require.NoError(h.t, err)
	var res hostapi.RemovePackageResult
	require.NoError(h.t, val.Get(&res))
	return res
}

func (h *testHost) health(name string, wait bool) (hostapi.CheckHealthResult, error) {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(h.a.CheckHealth, hostapi.CheckHealthParams{Name: name, Wait: wait})
	if err != nil {
		return hostapi.CheckHealthResult{}, err
	}
	var res hostapi.CheckHealthResult
	require.NoError(h.t, val.Get(&res))
	return res, nil
}

func (h *testHost) facts() hostapi.FactsResult {
	h.t.Helper()
	val, err := h.env.ExecuteActivity(h.a.Facts)
	require.NoError(h.t, err)
	var res hostapi.FactsResult
	require.NoError(h.t, val.Get(&res))
	return res
}

func (h *testHost) state() hostState {
	h.t.Helper()
	st, err := h.a.loadState()
	require.NoError(h.t, err)
	return *st
}

func (h *testHost) journal(step string) []state.Entry {
	h.t.Helper()
	all, err := state.Journal{Path: filepath.Join(h.root, JournalFile)}.Read()
	require.NoError(h.t, err)
	var out []state.Entry
	for _, e := range all {
		if step == "" || e.Step == step {
			out = append(out, e)
		}
	}
	return out
}

// cmdline is what a running process was started with.
func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "cmdline"))
	require.NoError(t, err)
	return strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")
}

func itoa(i int) string { return strconv.Itoa(i) }

func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

func appErrType(t *testing.T, err error) (string, string) {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	return ae.Type(), ae.Error()
}

// artifact is a tar.gz package with a service script bin/svc; it writes the file to dir and
// returns its file URL and digest.
func artifact(t *testing.T, dir, name string, files map[string]string) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, p := range sortedKeys(files) {
		mode := int64(0o644)
		if strings.HasPrefix(p, "bin/") {
			mode = 0o755
		}
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeReg, Mode: mode, Size: int64(len(files[p]))}))
		_, err := tw.Write([]byte(files[p]))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	sum := sha256.Sum256(buf.Bytes())
	return "file://" + path, hex.EncodeToString(sum[:])
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// demoScript is a service that says which version runs and then waits to be stopped.
func demoScript(version string) string {
	// Not exec: the process stays the script, so tests can tell versions apart by command line.
	return "#!/bin/sh\necho \"demo " + version + " starting with $*\"\n/bin/sleep 100000 &\nwait\n"
}

// crashScript is a service that cannot start.
const crashScript = "#!/bin/sh\necho 'demo: listen tcp :10250: bind: address already in use' >&2\nexit 3\n"

// demoSpec is package "demo" at version with the given service script.
func demoSpec(t *testing.T, srcDir, version, script string) hostapi.PackageSpec {
	url, sum := artifact(t, srcDir, "demo-"+version+".tar.gz", map[string]string{"bin/svc": script, "VERSION": version + "\n"})
	return hostapi.PackageSpec{
		Name:        "demo",
		Version:     version,
		Installer:   "local",
		ArtifactURL: url,
		SHA256:      sum,
		DependsOn:   []string{"base"},
		ConfigFiles: []hostapi.ConfigFile{{Path: "/etc/demo/demo.conf", Content: "version = " + version + "\n", Mode: 0o644}},
		Sysctls:     map[string]string{"net.ipv4.ip_forward": "1"},
		Service: &hostapi.ServiceSpec{
			Name:    "demo",
			Command: []string{"bin/svc"},
			Args:    []string{"--config", "${KOK_ROOT}/etc/demo/demo.conf", "--host", "${KOK_HOST}"},
			Env:     map[string]string{"DEMO_DIR": "${KOK_PACKAGE_DIR}"},
		},
	}
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
