package catalogue

import (
	"kok.dev/contract/hostapi"
	"kok.dev/internal/agent/fetch"

	"archive/tar"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"kok.dev/activities/host"
	"kok.dev/activities/kube"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/dev/simnode/health"
	"kok.dev/internal/agent/supervisor"
)

func TestBuild(t *testing.T) {
	out := t.TempDir()
	start := time.Now()
	mpvs, err := Build(out, "")
	require.NoError(t, err)
	t.Logf("first build: %s", time.Since(start))
	require.Len(t, mpvs, 8)

	byName := map[string]kokv1.MachinePackageVersion{}
	for _, m := range mpvs {
		byName[m.Name] = m
		require.Equal(t, m.Spec.Package+"-"+m.Spec.Version, m.Name)
		require.Equal(t, "kok.dev/v1alpha1", m.APIVersion)
		require.True(t, strings.HasPrefix(m.Spec.Artifact.URL, "file://"+out+"/"), m.Spec.Artifact.URL)
		file := strings.TrimPrefix(m.Spec.Artifact.URL, "file://")
		digest, err := fetch.SHA256File(file)
		require.NoError(t, err)
		require.Equal(t, digest, m.Spec.Artifact.SHA256, "the catalogue carries the artifact's real digest")
		require.Equal(t, []string{"VERSION", "bin/", "bin/" + programOf(m.Spec.Package)}, tarNames(t, file))
	}
	require.Equal(t, []string{"container-runtime"}, byName["kubelet-1.37.2"].Spec.DependsOn)
	require.Equal(t, []string{"kubelet"}, byName["log-collector-1.1.0"].Spec.DependsOn)
	require.Equal(t, []string{"kubelet"}, byName["node-problem-detector-0.8.20"].Spec.DependsOn)
	require.Contains(t, byName["kubelet-1.37.2"].Spec.Service.Args, "${KOK_ROOT}/etc/kubernetes/kubelet.kubeconfig")
	require.NotEqual(t, byName["kubelet-1.37.1"].Spec.Artifact.SHA256, byName["kubelet-1.37.2"].Spec.Artifact.SHA256)

	// Again, with a base URL: the same artifacts (reproducible), served from elsewhere.
	start = time.Now()
	again, err := Build(out, "http://127.0.0.1:8080/packages/")
	require.NoError(t, err)
	t.Logf("second build: %s", time.Since(start))
	for i := range again {
		require.Equal(t, mpvs[i].Spec.Artifact.SHA256, again[i].Spec.Artifact.SHA256)
		require.True(t, strings.HasPrefix(again[i].Spec.Artifact.URL, "http://127.0.0.1:8080/packages/"+again[i].Name))
	}
}

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		names = append(names, hdr.Name)
	}
	sort.Strings(names)
	return names
}

// TestPackagesInstallAndRunOnASimulatedHost puts the node daemons on a simulated host through
// the agent's activities and checks their health checks pass against the real programs.
func TestPackagesInstallAndRunOnASimulatedHost(t *testing.T) {
	mpvs, err := Build(t.TempDir(), "")
	require.NoError(t, err)
	byName := map[string]kokv1.MachinePackageVersion{}
	for _, m := range mpvs {
		byName[m.Name] = m
	}
	root := t.TempDir()
	sup := supervisor.New(supervisor.Options{RunDir: filepath.Join(root, host.RunDir), DieWithAgent: true})
	defer sup.Close()
	a := &host.Activities{Host: "w1", Root: root, Simulate: true, Services: sup}
	ctx := context.Background()

	for _, name := range []string{"container-runtime-1.7.0", "log-collector-1.0.0", "node-problem-detector-0.8.19"} {
		m := byName[name]
		res, err := a.EnsurePackage(ctx, hostapi.EnsurePackageParams{Spec: kube.PackageSpecFrom(&m)})
		require.NoError(t, err, name)
		require.Equal(t, hostapi.EnsureInstalled, res.Action)
		h, err := a.CheckHealth(ctx, hostapi.CheckHealthParams{Name: byName[name].Spec.Package, Wait: true})
		require.NoError(t, err)
		require.True(t, h.Healthy, "%s: %s", name, h.Message)
	}
	sock := filepath.Join(root, "run/kok-sim/container-runtime.sock")
	v, err := health.Probe(ctx, sock, "/version")
	require.NoError(t, err)
	require.Equal(t, "1.7.0", v)
	requireFileContains(t, filepath.Join(root, "etc/sysctl.d/kok-container-runtime.conf"), "net.ipv4.ip_forward = 1")

	upgrade := byName["container-runtime-1.7.1"]
	res, err := a.EnsurePackage(ctx, hostapi.EnsurePackageParams{Spec: kube.PackageSpecFrom(&upgrade)})
	require.NoError(t, err)
	require.Equal(t, hostapi.EnsureUpgraded, res.Action)
	h, err := a.CheckHealth(ctx, hostapi.CheckHealthParams{Name: "container-runtime", Wait: true})
	require.NoError(t, err)
	require.True(t, h.Healthy, h.Message)
	v, err = health.Probe(ctx, sock, "/version")
	require.NoError(t, err)
	require.Equal(t, "1.7.1", v)
}

func requireFileContains(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(b), want)
}
