package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"kok.dev/contract/hostapi"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kok.dev/activities/host"
	"kok.dev/activities/provider/process"
	clustercatalogue "kok.dev/dev/catalogue/cluster"
	"kok.dev/internal/pki"
	"kok.dev/tests/harness"
)

// TestProcessProviderControlPlane is the process provider end to end below the Cluster
// workflow: a business cluster's control plane — real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler built from source — installed from the release
// catalogue by kok-agent on a simulated master host, with the cluster's PKI and the provider's
// rendering, then used with the admin kubeconfig; a killed kube-apiserver is put back by the
// same EnsurePackage that repairs node drift.
func TestProcessProviderControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a whole control plane")
	}
	env := harness.Start(t, harness.Options{Agents: []string{"m1"}})
	bins, err := harness.K8sBinDir()
	require.NoError(t, err)
	manager, err := harness.Binary("kok-manager")
	require.NoError(t, err)
	cpvs, err := clustercatalogue.Build(filepath.Join(env.Dir, "cluster-packages"), map[string]string{harness.KubeVersion: bins}, manager)
	require.NoError(t, err)
	require.Len(t, cpvs, 1)
	rel := map[string]process.Release{}
	for _, c := range cpvs[0].Spec.Components {
		r := process.Release{Version: c.Version, Args: c.Args}
		if c.Artifact != nil {
			r.ArtifactURL, r.SHA256 = c.Artifact.URL, c.Artifact.SHA256
		}
		rel[string(c.Name)] = r
	}

	// The simulated host's own address, as a real master's; the ports follow the API server's.
	ports, err := process.PortsFor(18443)
	require.NoError(t, err)
	ip := env.Addresses["m1"]
	master := process.Master{Host: "m1", IP: ip}
	url := "https://" + ip + ":" + strconv.Itoa(ports.APIServer)
	bundle, err := pki.NewClusterPKI(pki.Request{ClusterName: "c1", Masters: []pki.Master{{Name: "m1", IP: ip}}, ServiceIP: "10.96.0.1"})
	require.NoError(t, err)
	files, err := process.FilesFor(bundle, "m1", url)
	require.NoError(t, err)
	pkgs, err := process.Render(process.Input{
		Cluster: "c1", Masters: []process.Master{master}, This: master, Ports: ports,
		ServiceCIDR: "10.96.0.0/12", PodCIDR: "10.244.0.0/16", Release: rel, Files: files,
	})
	require.NoError(t, err)

	d := newAgentDriver(t, env)
	start := time.Now()
	for _, p := range pkgs {
		var res hostapi.EnsurePackageResult
		require.NoError(t, d.call("m1", "EnsurePackage", hostapi.EnsurePackageParams{Spec: p}, &res), p.Name)
		require.Equal(t, hostapi.EnsureInstalled, res.Action, p.Name)
		d.healthy("m1", p.Name)
	}
	t.Logf("control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) installed and healthy in %s", time.Since(start).Round(time.Millisecond))

	admin, err := bundle.Kubeconfig(pki.Admin, url)
	require.NoError(t, err)
	cfg, err := clientcmd.RESTConfigFromKubeConfig(admin)
	require.NoError(t, err)
	cs, err := kubernetes.NewForConfig(cfg)
	require.NoError(t, err)
	ctx := context.Background()
	v, err := cs.Discovery().ServerVersion()
	require.NoError(t, err)
	require.Equal(t, harness.KubeVersion, v.GitVersion, "the cluster runs the release's apiserver")
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hello"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// The controller-manager works: it creates the default ServiceAccount of a new namespace.
	harness.Eventually(t, time.Minute, func(ctx context.Context) error {
		_, err := cs.CoreV1().ServiceAccounts("hello").Get(ctx, "default", metav1.GetOptions{})
		return err
	})

	// A killed kube-apiserver is put back by EnsurePackage, and says so.
	apiserver := process.PackageName("c1", process.KubeAPIServer)
	pidFile := filepath.Join(env.HostRoot("m1"), host.RunDir, apiserver+".pid")
	data, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.Fields(string(data))[0])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	harness.Eventually(t, time.Minute, func(context.Context) error {
		if err := syscall.Kill(pid, 0); err == nil {
			return fmt.Errorf("kube-apiserver %d not gone yet", pid)
		}
		return nil
	})
	var res hostapi.EnsurePackageResult
	require.NoError(t, d.call("m1", "EnsurePackage", hostapi.EnsurePackageParams{Spec: pkgs[1]}, &res))
	require.Equal(t, hostapi.EnsureRepaired, res.Action, "%+v", res)
	d.healthy("m1", apiserver)
	harness.Eventually(t, time.Minute, func(ctx context.Context) error {
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "hello", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if ns.Name != "hello" {
			return fmt.Errorf("unexpected namespace %q", ns.Name)
		}
		return nil
	})
}
