package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"kok.dev/dev/simnode/health"
)

func start(t *testing.T, o Options) (context.CancelFunc, chan error) {
	t.Helper()
	o.Logger = slog.New(slog.DiscardHandler)
	o.Interval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	t.Cleanup(cancel)
	return cancel, done
}

func TestRolesServeHealth(t *testing.T) {
	for _, role := range Roles {
		t.Run(role, func(t *testing.T) {
			root := t.TempDir()
			sock := filepath.Join(root, "run/kok-sim", role+".sock")
			cancel, done := start(t, Options{Role: role, Version: "1.0.0", Root: root, Socket: sock})
			require.Eventually(t, func() bool {
				_, err := health.Probe(context.Background(), sock, "/healthz")
				return err == nil
			}, 10*time.Second, 10*time.Millisecond)
			v, err := health.Probe(context.Background(), sock, "/version")
			require.NoError(t, err)
			require.Equal(t, "1.0.0", v)
			cancel()
			require.NoError(t, <-done)
		})
	}
}

func TestNodeProblemMakesItUnhealthy(t *testing.T) {
	root := t.TempDir()
	sock := filepath.Join(root, "npd.sock")
	start(t, Options{Role: "node-problem-detector", Version: "1", Root: root, Socket: sock})
	require.Eventually(t, func() bool {
		_, err := health.Probe(context.Background(), sock, "/healthz")
		return err == nil
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "var/lib/kok-sim"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "var/lib/kok-sim/problems"), []byte("KernelDeadlock\n"), 0o644))
	require.Eventually(t, func() bool {
		_, err := health.Probe(context.Background(), sock, "/healthz")
		return err != nil && strings.Contains(err.Error(), "node problem: KernelDeadlock")
	}, 10*time.Second, 10*time.Millisecond)
}

func TestLogCollectorIndexesLogs(t *testing.T) {
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "var/log/kok"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(root, "var/log/kok/kubelet.log"), []byte("hello\n"), 0o644))
	start(t, Options{Role: "log-collector", Version: "1", Root: root, Socket: filepath.Join(root, "lc.sock")})
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(filepath.Join(root, "var/lib/kok-sim/log-collector/index"))
		return string(b) == "kubelet.log 6\n"
	}, 10*time.Second, 10*time.Millisecond)
}

func TestRefusals(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	require.ErrorContains(t, Run(ctx, Options{Role: "container-runtime", Version: "2", Fail: true, Logger: log}), "simulated start failure")
	require.ErrorContains(t, Run(ctx, Options{Role: "dns", Logger: log}), `unknown role "dns"`)
	require.ErrorContains(t, Run(ctx, Options{Role: "container-runtime", Socket: "/x", Config: filepath.Join(t.TempDir(), "missing.toml"), Logger: log}), "read config")
}
