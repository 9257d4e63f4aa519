package clustercatalogue_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	kokv1 "kok.dev/api/v1alpha1"
	manager "kok.dev/cmd/kok-manager/app"
	clustercatalogue "kok.dev/dev/catalogue/cluster"
	"kok.dev/internal/agent/fetch"
	"kok.dev/tests/harness"
)

// testManager stands in for kok-manager: any Go binary with build info will do, and the test
// binary is already built.
func testManager(t *testing.T) string {
	t.Helper()
	bin, err := os.Executable()
	require.NoError(t, err)
	return bin
}

func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Kubernetes binaries and a real API server")
	}
	bins, err := harness.K8sBinDir()
	require.NoError(t, err)
	kube := harness.KubeVersion
	mgr := testManager(t)

	cpvs, err := clustercatalogue.Build(t.TempDir(), map[string]string{kube: bins}, mgr)
	require.NoError(t, err)
	require.Len(t, cpvs, 1)
	cpv := cpvs[0]
	require.Equal(t, kube, cpv.Name)
	require.Equal(t, kube, cpv.Spec.KubernetesVersion)

	var names []kokv1.ControlPlaneComponentName
	for _, c := range cpv.Spec.Components {
		names = append(names, c.Name)
	}
	require.Equal(t, []kokv1.ControlPlaneComponentName{
		kokv1.ComponentEtcd, kokv1.ComponentKubeAPIServer, kokv1.ComponentKubeControllerManager,
		kokv1.ComponentKubeScheduler, kokv1.ComponentMachineOperator,
	}, names, "every component once, in start order")

	t.Run("api server accepts every entry", func(t *testing.T) {
		env := harness.Start(t, harness.Options{})
		for i := range cpvs {
			obj := cpvs[i].DeepCopy()
			require.NoError(t, env.Client.Create(context.Background(), obj), "ClusterPackageVersion %s", obj.Name)
		}
	})

	t.Run("artifacts match their digests and hold exactly their binary", func(t *testing.T) {
		cache := t.TempDir()
		for _, c := range cpv.Spec.Components {
			require.NotNil(t, c.Artifact, c.Name)
			// The agent's own fetcher: it accepts the URL and the digest as the catalogue wrote them.
			f := &fetch.Fetcher{Dir: cache}
			path, err := f.Fetch(context.Background(), c.Artifact.URL, c.Artifact.SHA256)
			require.NoError(t, err, "%s: %s", c.Name, c.Artifact.URL)

			src := filepath.Join(bins, string(c.Name))
			if c.Name == kokv1.ComponentMachineOperator {
				src = mgr
			}
			requireOnlyBinary(t, path, clustercatalogue.Binary(c.Name), src)
		}
	})

	t.Run("versions are what the binaries report", func(t *testing.T) {
		for _, c := range cpv.Spec.Components {
			switch c.Name {
			case kokv1.ComponentEtcd:
				require.Regexp(t, `^3\.[0-9]+\.[0-9]+$`, c.Version)
			case kokv1.ComponentMachineOperator:
				require.Regexp(t, `^v0\.0\.0-dev\.[a-f0-9]{12}$`, c.Version, "a test binary has no module version")
			default:
				require.Equal(t, kube, c.Version, c.Name)
			}
		}
	})

	t.Run("default args are flags the binaries accept", func(t *testing.T) {
		var o manager.Options
		managerFlags := pflag.NewFlagSet("kok-manager", pflag.ContinueOnError)
		o.AddFlags(managerFlags)
		for _, c := range cpv.Spec.Components {
			require.NotEmpty(t, c.Args, c.Name)
			if c.Name == kokv1.ComponentMachineOperator {
				for flag := range c.Args {
					require.NotNil(t, managerFlags.Lookup(flag), "kok-manager has no flag --%s", flag)
				}
				continue
			}
			help, _ := exec.Command(filepath.Join(bins, string(c.Name)), "--help").CombinedOutput()
			for flag := range c.Args {
				require.Regexp(t, `(?m)^\s+--`+regexp.QuoteMeta(flag)+`\b`, string(help), "%s has no flag --%s", c.Name, flag)
			}
		}
	})

	t.Run("health checks", func(t *testing.T) {
		want := map[kokv1.ControlPlaneComponentName]string{
			kokv1.ComponentEtcd:                  "http://127.0.0.1:2381/health",
			kokv1.ComponentKubeAPIServer:         "https://127.0.0.1:6443/livez",
			kokv1.ComponentKubeControllerManager: "https://127.0.0.1:10257/healthz",
			kokv1.ComponentKubeScheduler:         "https://127.0.0.1:10259/healthz",
			kokv1.ComponentMachineOperator:       "http://127.0.0.1:8081/healthz",
		}
		for _, c := range cpv.Spec.Components {
			require.NotNil(t, c.HealthCheck, c.Name)
			require.NotNil(t, c.HealthCheck.HTTP, c.Name)
			require.Equal(t, want[c.Name], c.HealthCheck.HTTP.URL, c.Name)
			require.Equal(t, strings.HasPrefix(want[c.Name], "https:"), c.HealthCheck.HTTP.InsecureSkipVerify, c.Name)
		}
	})

	t.Run("a second build gives the same digests", func(t *testing.T) {
		again, err := clustercatalogue.Build(t.TempDir(), map[string]string{kube: bins}, mgr)
		require.NoError(t, err)
		require.Len(t, again, 1)
		require.Len(t, again[0].Spec.Components, len(cpv.Spec.Components))
		for i, c := range again[0].Spec.Components {
			require.Equal(t, cpv.Spec.Components[i].Artifact.SHA256, c.Artifact.SHA256, c.Name)
			require.Equal(t, cpv.Spec.Components[i].Version, c.Version, c.Name)
		}
	})
}

// requireOnlyBinary checks that the tar.gz at path holds one entry, name: a regular file, mode
// 0755, owned by root, with the content of src.
func requireOnlyBinary(t *testing.T, path, name, src string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	require.NoError(t, err)
	tr := tar.NewReader(gz)

	hdr, err := tr.Next()
	require.NoError(t, err)
	require.Equal(t, name, hdr.Name)
	require.Equal(t, byte(tar.TypeReg), hdr.Typeflag, name)
	require.Equal(t, int64(0o755), hdr.Mode, name)
	require.Zero(t, hdr.Uid, name)
	require.Zero(t, hdr.Gid, name)
	h := sha256.New()
	_, err = io.Copy(h, tr)
	require.NoError(t, err)
	want, err := fetch.SHA256File(src)
	require.NoError(t, err)
	require.Equal(t, want, hex.EncodeToString(h.Sum(nil)), "%s holds %s", path, src)

	_, err = tr.Next()
	require.True(t, errors.Is(err, io.EOF), "%s holds more than %s", path, name)
}

func TestBuildRefusesBadInput(t *testing.T) {
	mgr := testManager(t)
	empty := t.TempDir()

	_, err := clustercatalogue.Build(t.TempDir(), map[string]string{"v1.37.2": empty}, mgr)
	require.ErrorContains(t, err, "etcd is missing")
	require.ErrorContains(t, err, "make k8s-bins KUBE_VERSIONS=v1.37.2")

	_, err = clustercatalogue.Build(t.TempDir(), map[string]string{"1.37": empty}, mgr)
	require.EqualError(t, err, `kubernetes version "1.37": want vMAJOR.MINOR.PATCH, such as v1.37.2`)

	_, err = clustercatalogue.Build(t.TempDir(), nil, mgr)
	require.EqualError(t, err, "no Kubernetes versions given")

	bins, err := harness.K8sBinDir()
	if err != nil {
		return // the rest needs the Kubernetes binaries; TestBuild reports their absence
	}
	_, err = clustercatalogue.Build(t.TempDir(), map[string]string{"v1.37.2": bins}, filepath.Join(empty, "kok-manager"))
	require.ErrorContains(t, err, "kok-manager is missing")

	_, err = clustercatalogue.Build(t.TempDir(), map[string]string{"v1.36.0": bins}, mgr)
	require.ErrorContains(t, err, "reports version "+harness.KubeVersion+", not v1.36.0")
}
