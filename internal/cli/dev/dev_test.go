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

	"kok.dev/internal/devenv"
	"kok.dev/internal/devenv/metacluster"
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
		StateDir:   filepath.Join(wd, ".kok", "dev"),
		Kubeconfig: filepath.Join(wd, ".kok", "dev", "meta.kubeconfig"),
		Namespace:  "kok",
		Temporal:   devenv.Part{URL: "127.0.0.1:7233"},
		WebUI:      devenv.Part{URL: "http://127.0.0.1:8233"},
		APIServer:  devenv.Part{URL: "https://127.0.0.1:6443"},
	}
	var b bytes.Buffer
	printBanner(&b, s, ".kok/dev")
	require.Contains(t, b.String(), "http://127.0.0.1:8233/namespaces/kok/workflows")
	require.Contains(t, b.String(), "kubectl --kubeconfig .kok/dev/meta.kubeconfig get clusters")
	require.Contains(t, b.String(), "Ctrl-C")

	b.Reset()
	printHealth(&b, []devenv.Health{{Part: "etcd", Healthy: true, Detail: "http://x"}, {Part: "kok-manager", Detail: "refused"}})
	require.Equal(t, "etcd         healthy    http://x\nkok-manager  UNHEALTHY  refused\n", b.String())
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
		bins = filepath.Join("..", "..", "..", devenv.DefaultK8sBins)
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
	args := []string{"up", "--state-dir", state, "--k8s-bins", bins, "--crds", crds, "--manager-bin", os.Args[0]}
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
