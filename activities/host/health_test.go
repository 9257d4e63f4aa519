package host

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"kok.dev/contract/hostapi"
)

func TestHealthChecks(t *testing.T) {
	root, src := t.TempDir(), t.TempDir()
	h := newHost(t, root, slowRestarts)

	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()

	install := func(version string, check *hostapi.ProbeSpec) {
		spec := demoSpec(t, src, version, demoScript(version))
		spec.HealthCheck = check
		h.mustEnsure(spec)
	}
	check := func(wait bool) hostapi.CheckHealthResult {
		res, err := h.health("demo", wait)
		require.NoError(t, err)
		return res
	}

	t.Run("no health check: the service runs", func(t *testing.T) {
		install("1.0.0", nil)
		require.Equal(t, hostapi.CheckHealthResult{Healthy: true, Message: "service demo is running"}, check(false))
		require.NoError(t, h.sup.Stop("demo"))
		res := check(false)
		require.False(t, res.Healthy)
		require.Equal(t, "service demo is not running", res.Message)
	})
	t.Run("exec", func(t *testing.T) {
		install("1.1.0", &hostapi.ProbeSpec{Exec: []string{"/bin/sh", "-c", "test -f ${KOK_ROOT}/run/demo.ready"}})
		res := check(false)
		require.False(t, res.Healthy)
		require.Contains(t, res.Message, "exit status 1")
		require.NoError(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(root, "run/demo.ready"), nil, 0o644))
		require.True(t, check(false).Healthy)
	})
	t.Run("http", func(t *testing.T) {
		install("1.2.0", &hostapi.ProbeSpec{HTTPURL: srv.URL + "/healthz", ExpectStatus: 200})
		require.True(t, check(false).Healthy)
		status.Store(http.StatusServiceUnavailable)
		res := check(false)
		require.False(t, res.Healthy)
		require.Contains(t, res.Message, "answered 503, want 200")
	})
	t.Run("tcp", func(t *testing.T) {
		install("1.3.0", &hostapi.ProbeSpec{TCPAddress: l.Addr().String()})
		require.True(t, check(false).Healthy)
	})
	t.Run("wait until healthy", func(t *testing.T) {
		ready := filepath.Join(root, "run/demo.ready")
		require.NoError(t, os.Remove(ready))
		install("1.4.0", &hostapi.ProbeSpec{Exec: []string{"/bin/test", "-f", "${KOK_ROOT}/run/demo.ready"}, PeriodSec: 1, FailureThreshold: 5})
		// The component becomes ready while the activity waits: on its first heartbeat.
		var beats atomic.Int32
		h.env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) {
			if beats.Add(1) == 1 {
				_ = os.WriteFile(ready, nil, 0o644)
			}
		})
		defer h.env.SetOnActivityHeartbeatListener(func(*activity.Info, converter.EncodedValues) {})
		res := check(true)
		require.True(t, res.Healthy, res.Message)
		require.GreaterOrEqual(t, beats.Load(), int32(1), "a failed check heartbeats before the next")
	})
	t.Run("wait gives up after the failure threshold", func(t *testing.T) {
		install("1.5.0", &hostapi.ProbeSpec{TCPAddress: "127.0.0.1:1", PeriodSec: 1, TimeoutSec: 1, FailureThreshold: 2})
		res := check(true)
		require.False(t, res.Healthy)
		require.Contains(t, res.Message, "2 checks in a row failed, 1s apart; last: connect to 127.0.0.1:1")
	})
	t.Run("not installed", func(t *testing.T) {
		_, err := h.health("nope", false)
		typ, msg := appErrType(t, err)
		require.Equal(t, hostapi.ErrTypeNotInstalled, typ)
		require.Contains(t, msg, "package nope is not installed on host w1")
	})
}
