package harness

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"kok.dev/contract/search"

	"go.temporal.io/sdk/client"
	"go.temporal.io/server/temporaltest"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/internal/codec"
)

// Options says which parts a test needs besides the API server.
type Options struct {
	// Temporal starts an in-process Temporal server. Implied by Manager and Agents.
	Temporal bool
	// Manager starts kok-manager as a process against the API server and Temporal.
	Manager bool
	// Agents starts one kok-agent process per host name.
	Agents []string
	// Codec encrypts every Temporal payload with a fresh key file (CodecKeyFile), as a real
	// installation does: kok-manager, the agents and TemporalClient all use it.
	Codec bool
}

// Env is what Start brought up. Fields for parts that were not asked for are zero.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a controller-runtime client whose scheme knows core and kok types.
	Client ctrlclient.Client
	// Scheme is the scheme of Client.
	Scheme *runtime.Scheme
	// Kubeconfig is a file holding Config, for processes and kubectl.
	Kubeconfig string
	// Dir is this test's scratch directory (logs, host roots).
	Dir string

	// Temporal is the in-process server; TemporalClient a client of its namespace.
	Temporal          *temporaltest.TestServer
	TemporalClient    client.Client
	TemporalAddress   string
	TemporalNamespace string
	// CodecKeyFile is the payload codec's key file ("" without Options.Codec).
	CodecKeyFile string

	// Manager is the kok-manager process, Agents the kok-agent processes by host name.
	Manager *Process
	Agents  map[string]*Process
	// Addresses are the simulated hosts' service addresses by host name: each host gets its own
	// loopback address (127.0.0.2, 127.0.0.3, ...), as real hosts have their own IPs, so several
	// masters on one machine keep the same ports.
	Addresses map[string]string

	t testing.TB
}

// NewScheme returns a scheme with the core Kubernetes types and every kok kind.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := kokv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Start brings up what opts asks for and registers its teardown with t.Cleanup.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	bins, err := K8sBinDir()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	scheme, err := NewScheme()
	if err != nil {
		t.Fatalf("harness: scheme: %v", err)
	}

	env := &Env{t: t, Scheme: scheme, Dir: t.TempDir(), Agents: map[string]*Process{}}
	env.startAPIServer(bins, filepath.Join(root, "crds"))

	if opts.Codec {
		env.CodecKeyFile = filepath.Join(env.Dir, "codec-keys.json")
		if err := codec.GenerateKeyFile(env.CodecKeyFile); err != nil {
			t.Fatalf("harness: codec keys: %v", err)
		}
	}
	if opts.Temporal || opts.Manager || len(opts.Agents) > 0 {
		env.startTemporal()
	}
	if opts.Manager {
		env.Manager = env.StartManager()
	}
	for _, host := range opts.Agents {
		env.Agents[host] = env.StartAgent(host)
	}
	return env
}

func (e *Env) startAPIServer(bins, crds string) {
	t := e.t
	te := &envtest.Environment{
		BinaryAssetsDirectory: bins,
		CRDDirectoryPaths:     []string{crds},
		ErrorIfCRDPathMissing: true,
		Scheme:                e.Scheme,
	}
	cfg, err := te.Start()
	if err != nil {
		t.Fatalf("harness: start kube-apiserver and etcd from %s: %v", bins, err)
	}
	t.Cleanup(func() {
		if err := te.Stop(); err != nil {
			t.Logf("harness: stop kube-apiserver: %v", err)
		}
	})
	e.Config = cfg
	e.Client, err = ctrlclient.New(cfg, ctrlclient.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatalf("harness: client: %v", err)
	}
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, te.KubeConfig, 0o600); err != nil {
		t.Fatalf("harness: write kubeconfig: %v", err)
	}
}

func (e *Env) startTemporal() {
	// temporaltest ties itself to a *testing.T; a benchmark gets the same server, stopped by
	// its own cleanup.
	if t, ok := e.t.(*testing.T); ok {
		e.Temporal = temporaltest.NewServer(temporaltest.WithT(t))
	} else {
		e.Temporal = temporaltest.NewServer()
		e.t.Cleanup(e.Temporal.Stop)
	}
	e.TemporalClient = e.Temporal.GetDefaultClient()
	if e.CodecKeyFile != "" {
		keys, err := codec.LoadKeyring(e.CodecKeyFile)
		if err != nil {
			e.t.Fatalf("harness: %v", err)
		}
		e.TemporalClient = e.Temporal.NewClientWithOptions(client.Options{DataConverter: codec.NewDataConverter(keys)})
	}
	e.TemporalAddress = e.Temporal.GetFrontendHostPort()
	e.TemporalNamespace = e.Temporal.GetDefaultNamespace()
	// kok starts every workflow with its KokCluster and KokKind search attributes, which the
	// server refuses unless the namespace defines them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := search.EnsureDefined(ctx, e.TemporalClient, e.TemporalNamespace); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
}
