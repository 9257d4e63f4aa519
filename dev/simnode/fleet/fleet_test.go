package fleet_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.temporal.io/server/temporaltest"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/hostapi"
	"kok.dev/contract/queue"
	"kok.dev/dev/simnode/fleet"
	"kok.dev/internal/agent/supervisor"
)

func TestSimulatedServicesBehaveLikeTheSupervisor(t *testing.T) {
	s := fleet.NewSimulatedServices()
	ctx := context.Background()
	require.False(t, s.Status("d").Known)
	require.NoError(t, s.Stop("d"), "stopping an unknown service succeeds")
	require.Error(t, s.Start(ctx, supervisor.Spec{Name: "d"}, 0), "a spec without program and log is refused")

	spec := supervisor.Spec{Name: "d", Path: "/pkg/bin/d", LogPath: "/log/d.log", RestartPolicy: supervisor.RestartAlways}
	start := time.Now()
	require.NoError(t, s.Start(ctx, spec, 20*time.Millisecond))
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond, "start waits out the settle time")
	st := s.Status("d")
	require.True(t, st.Known && st.Running)
	require.NotZero(t, st.PID)
	got, ok := s.Spec("d")
	require.True(t, ok)
	require.True(t, got.Equal(spec))

	require.True(t, s.Crash("d"))
	st2 := s.Status("d")
	require.True(t, st2.Running, "a crashed service is restarted")
	require.Equal(t, 1, st2.Restarts)
	require.Equal(t, "exit status 1", st2.LastExit)
	require.NotEqual(t, st.PID, st2.PID)
	require.Equal(t, 1, s.Running())

	require.NoError(t, s.Stop("d"))
	require.False(t, s.Status("d").Known)
	require.False(t, s.Crash("d"))
	require.Equal(t, 0, s.Running())

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.Start(cancelled, spec, time.Hour), context.Canceled)
}

func TestCatalogueArtifactsMatchTheirDigests(t *testing.T) {
	mpvs, err := fleet.Catalogue(t.TempDir())
	require.NoError(t, err)
	require.Len(t, mpvs, 2+len(fleet.SettingVersions))
	for _, m := range mpvs {
		require.Equal(t, m.Spec.Package+"-"+m.Spec.Version, m.Name)
		if m.Spec.Type == kokv1.PackageSystemSetting {
			require.Nil(t, m.Spec.Artifact)
			require.NotEmpty(t, m.Spec.ConfigFiles)
			continue
		}
		data, err := os.ReadFile(strings.TrimPrefix(m.Spec.Artifact.URL, "file://"))
		require.NoError(t, err)
		sum := sha256.Sum256(data)
		require.Equal(t, hex.EncodeToString(sum[:]), m.Spec.Artifact.SHA256)
	}
}

// installWorkflow installs a package on a host and checks its health, as the Machine workflow
// does, through the host's task queue.
func installWorkflow(ctx workflow.Context, host string, spec hostapi.PackageSpec) (hostapi.CheckHealthResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: queue.HostTaskQueue(host), StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	if err := workflow.ExecuteActivity(ctx, hostapi.ActivityEnsurePackage, hostapi.EnsurePackageParams{Spec: spec}).Get(ctx, nil); err != nil {
		return hostapi.CheckHealthResult{}, err
	}
	var res hostapi.CheckHealthResult
	err := workflow.ExecuteActivity(ctx, hostapi.ActivityCheckHealth, hostapi.CheckHealthParams{Name: spec.Name}).Get(ctx, &res)
	return res, err
}

func TestFleetHostsRunTheRealHostActivities(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Temporal server")
	}
	ts := temporaltest.NewServer(temporaltest.WithT(t))
	tc := ts.GetDefaultClient()
	dir := t.TempDir()
	mpvs, err := fleet.Catalogue(filepath.Join(dir, "packages"))
	require.NoError(t, err)
	m := mpvs[0].Spec
	spec := hostapi.PackageSpec{
		Name: m.Package, Version: m.Version, Type: string(m.Type), Installer: string(m.Installer),
		ArtifactURL: m.Artifact.URL, SHA256: m.Artifact.SHA256,
		ConfigFiles: []hostapi.ConfigFile{{Path: m.ConfigFiles[0].Path, Content: m.ConfigFiles[0].Content}},
		Service:     &hostapi.ServiceSpec{Name: m.Service.Name, Command: m.Service.Command, Args: m.Service.Args, RestartPolicy: string(m.Service.RestartPolicy)},
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := fleet.Start(ctx, fleet.Options{Temporal: tc, Root: filepath.Join(dir, "hosts"), Hosts: fleet.HostNames("h", 3)})
	require.NoError(t, err)
	defer f.Stop()
	require.Len(t, f.Hosts(), 3)

	w := worker.New(tc, "fleet-test", worker.Options{})
	w.RegisterWorkflow(installWorkflow)
	require.NoError(t, w.Start())
	defer w.Stop()

	h := f.Hosts()[1]
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: "fleet-test"}, installWorkflow, h.Name, spec)
	require.NoError(t, err)
	var res hostapi.CheckHealthResult
	require.NoError(t, run.Get(ctx, &res))
	require.True(t, res.Healthy, res.Message)

	// Real files under the host's own root, a simulated process.
	content, err := os.ReadFile(filepath.Join(h.Root, m.ConfigFiles[0].Path))
	require.NoError(t, err)
	require.Equal(t, m.ConfigFiles[0].Content, string(content))
	require.True(t, h.Services.Status(m.Service.Name).Running)
	require.Zero(t, f.Hosts()[0].Services.Running(), "other hosts are untouched")
	_, err = os.Stat(filepath.Join(f.Hosts()[0].Root, m.ConfigFiles[0].Path))
	require.True(t, os.IsNotExist(err))
}
