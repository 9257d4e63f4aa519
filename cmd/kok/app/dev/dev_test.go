package dev

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"kok.dev/dev/devenv"
	"kok.dev/dev/devenv/metacluster"
)

// fakeManagerEnv makes the test binary play kok-manager: /readyz on the probe address until
// SIGTERM.
const fakeManagerEnv = "KOK_CLI_DEV_FAKE_MANAGER"

func TestMain(m *testing.M) {
	if os.Getenv(fakeManagerEnv) == "1" {
		os.Exit(fakeManager(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeManager(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	for _, a := range args {
		if addr, ok := strings.CutPrefix(a, "--health-probe-bind-address="); ok {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
			go func() { _ = http.Serve(ln, ok) }()
		}
	}
	<-ctx.Done()
	return 0
}

// syncBuffer is written by the command's goroutine and read by the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func run(ctx context.Context, args ...string) (string, error) {
	var out syncBuffer
	cmd := NewCommand()
	// As the root command does: errors are the caller's to print.
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestStatusWithoutUp(t *testing.T) {
	out, err := run(context.Background(), "status", "--state-dir", t.TempDir())
	require.ErrorIs(t, err, devenv.ErrNotRunning)
	require.ErrorContains(t, err, "start it with `kok dev up`")
	require.Empty(t, out)
}

func TestUpRefusesBadFlags(t *testing.T) {
	_, err := run(context.Background(), "up", "--state-dir", t.TempDir(), "--etcd-port", "0")
	require.ErrorContains(t, err, "--etcd-port 0: not a TCP port")
	_, err = run(context.Background(), "up", "extra")
	require.ErrorContains(t, err, "unknown command")
}

func TestBannerAndHealthOutput(t *testing.T) {
	wd, err := os.Getwd()
	require.NoError(t, err)
	s := &devenv.State{
		StateDir:     filepath.Join(wd, ".kok", "dev"),
		Kubeconfig:   filepath.Join(wd, ".kok", "dev", "meta.kubeconfig"),
		Namespace:    "kok",
		Temporal:     devenv.Part{URL: "127.0.0.1:7233"},
		WebUI:        devenv.Part{URL: "http://127.0.0.1:8233"},
		APIServer:    devenv.Part{URL: "https://127.0.0.1:6443"},
		ReadySeconds: 41.7,
	}
	var b bytes.Buffer
	printBanner(&b, s, ".kok/dev", "bin/k8s/v1.37.2")
	require.Contains(t, b.String(), "kok is up in 42s")
	require.Contains(t, b.String(), "http://127.0.0.1:8233/namespaces/kok/workflows")
	require.Contains(t, b.String(), "bin/k8s/v1.37.2/kubectl --kubeconfig .kok/dev/meta.kubeconfig get clusters")
	require.Contains(t, b.String(), "Ctrl-C")

	// With the demo: both kubeconfigs, and three things to try.
	s.Demo = &devenv.Demo{
		Name: "demo", Kubeconfig: filepath.Join(wd, ".kok", "dev", "demo.kubeconfig"), Endpoint: "https://127.0.0.2:16443",
		Version: "v1.36.3", UpgradeTo: "v1.37.2", Workers: []string{"worker-1", "worker-2"}, Deployment: "default/demo",
		PackageChange: &devenv.PackageChange{Machine: "worker-1", Index: 2, Package: "log-collector", From: "1.0.0", To: "1.1.0"},
	}
	b.Reset()
	printBanner(&b, s, ".kok/dev", "bin/k8s/v1.37.2")
	out := b.String()
	for _, want := range []string{
		"kubeconfig .kok/dev/demo.kubeconfig (or: ",
		" kubeconfig demo --kubeconfig .kok/dev/meta.kubeconfig)",
		"runs v1.36.3 with 2 Ready nodes",
		" cluster upgrade demo --to v1.37.2 --kubeconfig .kok/dev/meta.kubeconfig",
		`bin/k8s/v1.37.2/kubectl --kubeconfig .kok/dev/demo.kubeconfig patch machine worker-1 --type json -p '[{"op":"replace","path":"/spec/packages/2/version","value":"1.1.0"}]'`,
		"http://127.0.0.1:8233/namespaces/kok/workflows/Cluster%2Fdemo",
		"http://127.0.0.1:8233/namespaces/kok/workflows/Machine%2Fdemo%2Fworker-1",
		" dev down (--purge deletes the state)",
	} {
		require.Contains(t, out, want)
	}

	// At the newest release, the first thing to try is a rollback.
	s.Demo.UpgradeTo, s.Demo.RollbackTo = "", "v1.36.3"
	b.Reset()
	printBanner(&b, s, ".kok/dev", "bin/k8s/v1.37.2")
	require.Contains(t, b.String(), " cluster rollback demo --kubeconfig .kok/dev/meta.kubeconfig")

	// A demo that did not come up says why, and where to look.
	s.Demo.Problem = "not ready within 10m0s: Creating, Create: etcd"
	b.Reset()
	printBanner(&b, s, ".kok/dev", "bin/k8s/v1.37.2")
	require.Contains(t, b.String(), "The demo cluster is NOT ready: not ready within 10m0s: Creating, Create: etcd")
	require.NotContains(t, b.String(), "Three things to try")

	// Another state directory: the commands printed must name it.
	b.Reset()
	printBanner(&b, s, "/tmp/kok-dev", "bin/k8s/v1.37.2")
	require.Contains(t, b.String(), " dev status --state-dir /tmp/kok-dev.")
	require.Contains(t, b.String(), " dev down --state-dir /tmp/kok-dev (--purge")

	b.Reset()
	printHealth(&b, []devenv.Health{{Part: "etcd", Healthy: true, Detail: "http://x"}, {Part: "kok-manager", Detail: "refused"}})
	require.Equal(t, "etcd         healthy    http://x\nkok-manager  UNHEALTHY  refused\n", b.String())
}

func TestDownWithoutUp(t *testing.T) {
	dir := t.TempDir()
	out, err := run(context.Background(), "down", "--state-dir", dir)
	require.NoError(t, err)
	require.Equal(t, "kok dev up is not running on "+dir+"\n", out)

	// --purge deletes a state directory, and only one.
	notState := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notState, "precious"), []byte("x"), 0o644))
	_, err = run(context.Background(), "down", "--purge", "--state-dir", notState)
	require.ErrorContains(t, err, "not a kok dev state directory, not deleting it")
	require.FileExists(t, filepath.Join(notState, "precious"))

	state := filepath.Join(t.TempDir(), "state")
	require.NoError(t, os.MkdirAll(filepath.Join(state, "hosts", "worker-1"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(state, "codec.key"), []byte("k"), 0o600))
	out, err = run(context.Background(), "down", "--purge", "--state-dir", state)
	require.NoError(t, err)
	require.Contains(t, out, "deleted "+state)
	require.NoDirExists(t, state)
}

// freePorts returns n distinct free ports: each is held until all are picked.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var ports []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer func() { _ = ln.Close() }()
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return ports
}

func TestUpThenStatusThenInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole local system")
	}
	bins := os.Getenv("KOK_K8S_BINS")
	if bins == "" {
		bins = filepath.Join("..", "..", "..", "..", devenv.DefaultK8sBins)
	}
	require.NoError(t, metacluster.CheckBinaries(bins))
	t.Setenv(fakeManagerEnv, "1")

	dir := t.TempDir()
	crds := filepath.Join(dir, "crds")
	require.NoError(t, os.MkdirAll(crds, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(crds, "things.yaml"), []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: things.test.kok.dev}
spec:
  group: test.kok.dev
  names: {kind: Thing, plural: things}
  scope: Cluster
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}
`), 0o644))
	state := filepath.Join(dir, "state")
	args := []string{"up", "--demo=false", "--state-dir", state, "--k8s-bins", bins, "--crds", crds, "--manager-bin", os.Args[0]}
	flags := []string{"temporal-port", "ui-port", "codec-port", "apiserver-port", "etcd-port",
		"controller-manager-port", "manager-probe-port", "manager-metrics-port"}
	for i, port := range freePorts(t, len(flags)) {
		args = append(args, "--"+flags[i], port)
	}

	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		cmd := NewCommand()
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		done <- cmd.ExecuteContext(ctx)
	}()
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			t.Fatalf("kok dev up ended early: %v\n%s", err, out.String())
		default:
		}
		return strings.Contains(out.String(), "Press Ctrl-C to stop.")
	}, 5*time.Minute, 100*time.Millisecond)
	require.Contains(t, out.String(), "get clusters")

	status, err := run(context.Background(), "status", "--state-dir", state)
	require.NoError(t, err, status)
	for _, part := range []string{"temporal", "web-ui", "codec-server", "etcd", "kube-apiserver", "kube-controller-manager", "crds", "kok-manager"} {
		require.Regexp(t, "(?m)^"+part+" +healthy ", status)
	}

	// What Ctrl-C does: the command's context ends.
	interrupt()
	select {
	case err := <-done:
		require.NoError(t, err, out.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("kok dev up did not stop")
	}
	require.Contains(t, out.String(), "stopped")
	_, err = run(context.Background(), "status", "--state-dir", state)
	require.ErrorIs(t, err, devenv.ErrNotRunning)
}
