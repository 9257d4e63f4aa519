package devenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"kok.dev/tests/harness"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kok.dev/dev/devenv/metacluster"
)

// fakeManagerEnv makes the test binary play kok-manager: it serves /readyz on the probe
// address once the kubeconfig it was given exists, and exits on SIGTERM.
const fakeManagerEnv = "KOK_DEVENV_FAKE_MANAGER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeManagerEnv) == "1" {
		if err := fakeManager(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "fake kok-manager:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func fakeManager(args []string) error {
	var probeAddr, kubeconfig string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--health-probe-bind-address="); ok {
			probeAddr = v
		}
		if v, ok := strings.CutPrefix(a, "--kubeconfig="); ok {
			kubeconfig = v
		}
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", probeAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println("fake kok-manager serving", probeAddr, "with args", args)
	<-ctx.Done()
	return srv.Close()
}

const testCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.test.kok.dev
spec:
  group: test.kok.dev
  names: {kind: Gadget, listKind: GadgetList, plural: gadgets, singular: gadget}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// k8sBins finds the binaries as every test does (tests/harness), and skips in -short runs.
func k8sBins(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the whole local system")
	}
	dir, err := harness.K8sBinDir()
	require.NoError(t, err)
	require.NoError(t, metacluster.CheckBinaries(dir))
	return dir
}

// testConfig uses free ports only; they are held until all are picked so that they differ.
func testConfig(t *testing.T, bins string) Config {
	t.Helper()
	dir := t.TempDir()
	crds := filepath.Join(dir, "crds")
	require.NoError(t, os.MkdirAll(crds, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(crds, "gadgets.yaml"), []byte(testCRD), 0o644))
	cfg := DefaultConfig()
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.K8sBins = bins
	cfg.CRDDir = crds
	cfg.ManagerBin = os.Args[0]
	// The demo needs real kok binaries; tests/integration/devup_test.go runs it.
	cfg.Demo = false
	cfg.Progress = testWriter{t}
	for _, p := range []*int{&cfg.TemporalPort, &cfg.UIPort, &cfg.CodecPort, &cfg.EtcdPort, &cfg.APIServerPort,
		&cfg.ControllerManagerPort, &cfg.ManagerProbePort, &cfg.ManagerMetricsPort} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer func() { _ = ln.Close() }()
		*p = ln.Addr().(*net.TCPAddr).Port
	}
	return cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// up starts the system for the rest of the test: Up's context is its lifetime, and
// ReadyTimeout already bounds each step of the start.
func up(t *testing.T, cfg Config) *Running {
	t.Helper()
	r, err := Up(context.Background(), cfg)
	require.NoError(t, err)
	return r
}

func pidAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func requireAllHealthy(t *testing.T, stateDir string) *State {
	t.Helper()
	s, results, err := Check(context.Background(), stateDir)
	require.NoError(t, err)
	require.Len(t, results, 8)
	require.Empty(t, Unhealthy(results), "%+v", results)
	return s
}

func TestUpRestartAndCrash(t *testing.T) {
	bins := k8sBins(t)
	t.Setenv(fakeManagerEnv, "1")
	cfg := testConfig(t, bins)

	r := up(t, cfg)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = r.Stop()
		}
	})
	s := requireAllHealthy(t, cfg.StateDir)
	require.Equal(t, []string{"gadgets.test.kok.dev"}, s.CRDs)
	require.Equal(t, os.Getpid(), s.PID)
	require.FileExists(t, filepath.Join(cfg.StateDir, "codec.key"))

	// One state dir, one system.
	_, err := Up(context.Background(), cfg)
	require.ErrorContains(t, err, fmt.Sprintf("another kok dev up (pid %d) is using %s", os.Getpid(), cfg.StateDir))

	// Leave an object in the meta cluster and a running workflow in Temporal.
	restCfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	require.NoError(t, err)
	kube, err := kubernetes.NewForConfig(restCfg)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = kube.CoreV1().ConfigMaps(SystemNamespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "keep-me"}, Data: map[string]string{"k": "v"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	tc, err := client.Dial(client.Options{HostPort: s.Temporal.URL, Namespace: Namespace, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "survivor", TaskQueue: "nobody-polls"}, "Nothing")
	require.NoError(t, err)
	tc.Close()

	require.NoError(t, r.Stop())
	stopped = true
	for _, p := range []Part{s.Etcd, s.APIServer, s.ControllerManager, s.Manager} {
		require.False(t, pidAlive(p.PID), "pid %d (%s) outlived Stop", p.PID, p.Log)
	}
	_, _, err = Check(ctx, cfg.StateDir)
	require.ErrorIs(t, err, ErrNotRunning)

	// Second run on the same state: everything is still there.
	r = up(t, cfg)
	stopped = false
	s = requireAllHealthy(t, cfg.StateDir)
	cm, err := kube.CoreV1().ConfigMaps(SystemNamespace).Get(ctx, "keep-me", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "v", cm.Data["k"])
	tc, err = client.Dial(client.Options{HostPort: s.Temporal.URL, Namespace: Namespace, Logger: sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))})
	require.NoError(t, err)
	desc, err := tc.DescribeWorkflowExecution(ctx, "survivor", run.GetRunID())
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, desc.GetWorkflowExecutionInfo().GetStatus())
	tc.Close()

	// A crashed child brings the system down, by name and with its log.
	require.NoError(t, syscall.Kill(s.Manager.PID, syscall.SIGKILL))
	err = r.Wait()
	stopped = true
	require.ErrorContains(t, err, "kok-manager exited unexpectedly (signal: killed)")
	require.ErrorContains(t, err, s.Manager.Log)
	require.ErrorContains(t, err, "fake kok-manager serving")
	for _, p := range []Part{s.Etcd, s.APIServer, s.ControllerManager} {
		require.False(t, pidAlive(p.PID), "pid %d (%s) outlived the crash", p.PID, p.Log)
	}
	_, err = ReadState(cfg.StateDir)
	require.ErrorIs(t, err, ErrNotRunning)
}

// demo turns the demo on (with stand-in binaries that exist) before mutate.
func demo(mutate func(*Config)) func(*Config) {
	return func(c *Config) {
		c.Demo = true
		c.AgentBin, c.KwokBin, c.KwokStages = c.ManagerBin, c.ManagerBin, c.ManagerBin
		c.ClusterVersions = []string{"v1.37.2"}
		mutate(c)
	}
}

func TestUpRefusesBadConfigBeforeStartingAnything(t *testing.T) {
	// Stand-ins: nothing may be run, so they only need to exist.
	bins := t.TempDir()
	for _, name := range metacluster.Binaries {
		require.NoError(t, os.WriteFile(filepath.Join(bins, name), []byte("#!/bin/sh\nexit 1\n"), 0o755))
	}
	base := testConfig(t, bins)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = busy.Close() }()

	for name, tc := range map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"port in use":    {func(c *Config) { c.APIServerPort = busy.Addr().(*net.TCPAddr).Port }, "for the kube-apiserver is in use (choose another with --apiserver-port)"},
		"same port":      {func(c *Config) { c.UIPort = c.TemporalPort }, "--ui-port"},
		"no manager":     {func(c *Config) { c.ManagerBin = "/nonexistent/kok-manager" }, "run `make build`"},
		"no binaries":    {func(c *Config) { c.K8sBins = t.TempDir() }, "make k8s-bins"},
		"no CRDs":        {func(c *Config) { c.CRDDir = t.TempDir() }, "no CRDs in"},
		"no state dir":   {func(c *Config) { c.StateDir = "" }, "--state-dir is empty"},
		"port 0":         {func(c *Config) { c.EtcdPort = 0 }, "--etcd-port 0: not a TCP port"},
		"zero readiness": {func(c *Config) { c.ReadyTimeout = 0 }, "--ready-timeout"},
		"two masters":    {demo(func(c *Config) { c.Masters = 2 }), "--masters 2: a cluster has 1, 3 or 5 masters"},
		"no workers":     {demo(func(c *Config) { c.Workers = 0 }), "--workers 0"},
		"bad release":    {demo(func(c *Config) { c.ClusterVersions = []string{"1.37"} }), `--cluster-versions "1.37"`},
		"demo version":   {demo(func(c *Config) { c.DemoVersion = "v1.30.0" }), "--demo-version v1.30.0 is not one of"},
		"demo port":      {demo(func(c *Config) { c.DemoAPIServerPort = 65530 }), "--demo-apiserver-port"},
		"agent port":     {demo(func(c *Config) { c.AgentMetricsPort = c.DemoAPIServerPort + 3 }), "--agent-metrics-port"},
		"no agent":       {demo(func(c *Config) { c.AgentBin = "/nonexistent/kok-agent" }), "kok-agent not found"},
		"no kwok":        {demo(func(c *Config) { c.KwokBin = "/nonexistent/kwok" }), "run `make kwok`"},
		"no releases":    {demo(func(c *Config) { c.ClusterVersions = nil }), "no Kubernetes releases beside"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base
			cfg.StateDir = filepath.Join(t.TempDir(), "state")
			tc.mutate(&cfg)
			_, err := Up(context.Background(), cfg)
			require.ErrorContains(t, err, tc.want)
			if cfg.StateDir != "" {
				_, err = ReadState(cfg.StateDir)
				require.ErrorIs(t, err, ErrNotRunning)
				_, err = os.Stat(filepath.Join(cfg.StateDir, "temporal.db"))
				require.True(t, errors.Is(err, os.ErrNotExist), "nothing may start on bad config")
			}
		})
	}
}
