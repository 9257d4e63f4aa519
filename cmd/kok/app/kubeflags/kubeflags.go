package kubeflags

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
)

const (
	// FlagKubeconfig names the kubeconfig file to use.
	FlagKubeconfig = "kubeconfig"
	// FlagContext names the kubeconfig context to use.
	FlagContext = "context"
	// EnvKubeconfig lists kubeconfig files, as kubectl reads it, when --kubeconfig is not set.
	EnvKubeconfig = "KUBECONFIG"
)

// localKubeconfig is where `kok dev up` writes the local meta cluster's kubeconfig; error
// messages mention it because it is the cluster a new user most likely means.
const localKubeconfig = ".kok/dev/meta.kubeconfig"

var scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(kokv1.AddToScheme(scheme))
}

// Flags choose the cluster a command talks to, as kubectl's flags of the same names do.
type Flags struct {
	// Kubeconfig is the kubeconfig file; empty means $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string
	// Context is the kubeconfig context; empty means the file's current context.
	Context string
}

// AddFlags registers --kubeconfig and --context on fs.
func (f *Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Kubeconfig, FlagKubeconfig, "", "Kubeconfig file of the cluster to read (default: $KUBECONFIG, then ~/.kube/config; the local system's is "+localKubeconfig+").")
	fs.StringVar(&f.Context, FlagContext, "", "Kubeconfig context to use (default: the kubeconfig's current context).")
}

// Cluster is a client of the API server the flags chose, and where it came from, for messages.
type Cluster struct {
	// Client knows core Kubernetes and kok types.
	Client client.Client
	// Server is the API server's URL.
	Server string
	// Context is the kubeconfig context in use.
	Context string
	// Kubeconfig is the file (or files, comma-separated) the configuration was read from.
	Kubeconfig string
}

// Connect reads the kubeconfig the flags name and returns a client of its cluster. It does not
// contact the server: the first request does.
func (f *Flags) Connect() (*Cluster, error) {
	files, err := f.files()
	if err != nil {
		return nil, err
	}
	source := strings.Join(files, ", ")
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: files}
	if f.Kubeconfig != "" {
		rules = &clientcmd.ClientConfigLoadingRules{ExplicitPath: f.Kubeconfig}
	}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.Context})
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig %s: %w", source, err)
	}
	name := f.Context
	if name == "" {
		name = raw.CurrentContext
	}
	if name == "" {
		return nil, fmt.Errorf("kubeconfig %s has no current context: pass --%s (it has %s)", source, FlagContext, contextNames(raw))
	}
	if _, ok := raw.Contexts[name]; !ok {
		return nil, fmt.Errorf("kubeconfig %s has no context %q: pass --%s with one it has (%s)", source, name, FlagContext, contextNames(raw))
	}
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s, context %q: %w", source, name, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("client for %s (context %q of kubeconfig %s): %w", cfg.Host, name, source, err)
	}
	return &Cluster{Client: c, Server: cfg.Host, Context: name, Kubeconfig: source}, nil
}

// files returns the kubeconfig files to read, in kubectl's order of precedence, or an error
// naming every file that was tried and how to point at another.
func (f *Flags) files() ([]string, error) {
	if f.Kubeconfig != "" {
		if _, err := os.Stat(f.Kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %s (from --%s): %w", f.Kubeconfig, FlagKubeconfig, err)
		}
		return []string{f.Kubeconfig}, nil
	}
	if env := os.Getenv(EnvKubeconfig); env != "" {
		var found []string
		for _, p := range filepath.SplitList(env) {
			if _, err := os.Stat(p); err == nil {
				found = append(found, p)
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("no kubeconfig found: none of the files in $%s exists (%s); pass --%s FILE or fix $%s (the local system's is %s)",
				EnvKubeconfig, env, FlagKubeconfig, EnvKubeconfig, localKubeconfig)
		}
		return found, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("no kubeconfig found: $%s is not set and the home directory is unknown (%w); pass --%s FILE (the local system's is %s)",
			EnvKubeconfig, err, FlagKubeconfig, localKubeconfig)
	}
	def := filepath.Join(home, clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)
	if _, err := os.Stat(def); err != nil {
		return nil, fmt.Errorf("no kubeconfig found: tried %s ($%s is not set); pass --%s FILE or set $%s (the local system's is %s)",
			def, EnvKubeconfig, FlagKubeconfig, EnvKubeconfig, localKubeconfig)
	}
	return []string{def}, nil
}

func contextNames(cfg clientcmdapi.Config) string {
	if len(cfg.Contexts) == 0 {
		return "no contexts"
	}
	names := make([]string, 0, len(cfg.Contexts))
	for n := range cfg.Contexts {
		names = append(names, fmt.Sprintf("%q", n))
	}
	sort.Strings(names)
	return "contexts " + strings.Join(names, ", ")
}

// Explain wraps err, which a request doing what ("list machines") returned, with the server it
// went to and, for the failures a user can fix on their side, what to do.
func (c *Cluster) Explain(err error, what string) error {
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("%s: the API server at %s (context %q) does not serve kok's kinds; install kok's CRDs there (kubectl apply -f crds/ in a kok checkout): %w",
			what, c.Server, c.Context, err)
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return fmt.Errorf("%s: cannot reach the API server at %s (context %q of kubeconfig %s); is it running, and is this the cluster you meant? %w",
			what, c.Server, c.Context, c.Kubeconfig, err)
	}
	return fmt.Errorf("%s on %s (context %q): %w", what, c.Server, c.Context, err)
}
