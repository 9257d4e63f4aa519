package metacluster

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kok.dev/tests/harness"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const widgetCRD = `---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.test.kok.dev
spec:
  group: test.kok.dev
  names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
---
`

var widgets = schema.GroupVersionResource{Group: "test.kok.dev", Version: "v1", Resource: "widgets"}

// k8sBins finds the binaries as every test does (tests/harness), and skips in -short runs.
func k8sBins(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs etcd and kube-apiserver")
	}
	dir, err := harness.K8sBinDir()
	require.NoError(t, err)
	require.NoError(t, CheckBinaries(dir))
	return dir
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		defer func() { _ = ln.Close() }() // held until all are picked, so they differ
	}
	return ports
}

func startCluster(t *testing.T, cfg Config) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := Start(ctx, cfg)
	require.NoError(t, err)
	return c
}

func TestMetaClusterKeepsObjectsAcrossRestart(t *testing.T) {
	bins := k8sBins(t)
	dir := t.TempDir()
	ports := freePorts(t, 3)
	cfg := Config{BinDir: bins, Dir: filepath.Join(dir, "state"), EtcdPort: ports[0], APIServerPort: ports[1], ControllerManagerPort: ports[2]}
	crdDir := filepath.Join(dir, "crds")
	require.NoError(t, os.MkdirAll(crdDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(crdDir, "test.kok.dev_widgets.yaml"), []byte(widgetCRD), 0o644))

	c := startCluster(t, cfg)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			require.NoError(t, c.Stop())
		}
	})
	ctx := context.Background()

	names, err := ApplyCRDs(ctx, c.RESTConfig(), crdDir, time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{"widgets.test.kok.dev"}, names)
	// Applying again is a no-op, as on every `kok dev up`.
	_, err = ApplyCRDs(ctx, c.RESTConfig(), crdDir, time.Minute)
	require.NoError(t, err)
	require.NoError(t, EnsureNamespace(ctx, c.RESTConfig(), "kok-system"))
	require.NoError(t, EnsureNamespace(ctx, c.RESTConfig(), "kok-system"))

	dyn, err := dynamic.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	widget := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "test.kok.dev/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1", "namespace": "kok-system"},
		"spec":     map[string]any{"size": int64(3)},
	}}
	_, err = dyn.Resource(widgets).Namespace("kok-system").Create(ctx, widget, metav1.CreateOptions{})
	require.NoError(t, err)

	// The garbage collector runs in kube-controller-manager: an orphaned child must go.
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	require.NoError(t, err)
	parent, err := cs.CoreV1().ConfigMaps("kok-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "parent"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = cs.CoreV1().ConfigMaps("kok-system").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Name:            "child",
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: parent.Name, UID: parent.UID}},
	}}, metav1.CreateOptions{})
	require.NoError(t, err)
	require.NoError(t, cs.CoreV1().ConfigMaps("kok-system").Delete(ctx, "parent", metav1.DeleteOptions{}))
	require.Eventually(t, func() bool {
		_, err := cs.CoreV1().ConfigMaps("kok-system").Get(ctx, "child", metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}, time.Minute, 200*time.Millisecond, "garbage collection does not run")

	require.NoError(t, c.Stop())
	stopped = true
	for _, p := range c.Processes() {
		<-p.Done()
	}

	c = startCluster(t, cfg)
	stopped = false
	// The kubeconfig on disk is what users and kok-manager use.
	restCfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(cfg.Dir, AdminKubeconfig))
	require.NoError(t, err)
	dyn, err = dynamic.NewForConfig(restCfg)
	require.NoError(t, err)
	require.NoError(t, CRDsEstablished(ctx, restCfg, names))
	got, err := dyn.Resource(widgets).Namespace("kok-system").Get(ctx, "w1", metav1.GetOptions{})
	require.NoError(t, err)
	size, _, err := unstructured.NestedInt64(got.Object, "spec", "size")
	require.NoError(t, err)
	require.Equal(t, int64(3), size)
}

func TestStartFailsWithTheComponentLog(t *testing.T) {
	bins := k8sBins(t)
	ports := freePorts(t, 3)
	// Something else holds the apiserver's port: the error must say so and show its log.
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	cfg := Config{BinDir: bins, Dir: t.TempDir(), EtcdPort: ports[0], APIServerPort: ln.Addr().(*net.TCPAddr).Port, ControllerManagerPort: ports[2]}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err = Start(ctx, cfg)
	require.Error(t, err)
	require.Contains(t, err.Error(), "kube-apiserver exited unexpectedly")
	require.Contains(t, err.Error(), "address already in use")
	require.Contains(t, err.Error(), filepath.Join(cfg.Dir, "logs", "kube-apiserver.log"))
}

func TestCheckBinariesSaysWhatToRun(t *testing.T) {
	err := CheckBinaries(t.TempDir())
	require.ErrorContains(t, err, "etcd not found")
	require.ErrorContains(t, err, "make k8s-bins")
}

func TestReadCRDsRefusesBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"empty dir":       {files: map[string]string{}, want: "no CRDs in"},
		"not a CRD":       {files: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n"}, want: "cm.yaml: document 0 is a /v1, Kind=ConfigMap"},
		"defined twice":   {files: map[string]string{"a.yaml": widgetCRD, "b.yaml": widgetCRD}, want: "b.yaml: CRD widgets.test.kok.dev is already defined in"},
		"no name":         {files: map[string]string{"x.yaml": "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"}, want: "CRD has no metadata.name"},
		"not yaml at all": {files: map[string]string{"x.yaml": "{{{"}, want: "x.yaml: document 0"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for file, content := range tc.files {
				require.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644))
			}
			_, err := ReadCRDs(dir)
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := ReadCRDs(filepath.Join(t.TempDir(), "missing"))
	require.ErrorContains(t, err, "make generate")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "w.yaml"), []byte(widgetCRD), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a CRD"), 0o644))
	crds, err := ReadCRDs(dir)
	require.NoError(t, err)
	require.Len(t, crds, 1)
}
