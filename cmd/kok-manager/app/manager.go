package app

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/contract/queue"
	"kok.dev/internal/tclient"
	clusterwatcher "kok.dev/watchers/cluster"
	machinewatcher "kok.dev/watchers/machine"
	controlworker "kok.dev/workers/control"
)

// Options are kok-manager's flags.
type Options struct {
	MetricsAddr             string
	ProbeAddr               string
	LeaderElect             bool
	LeaderElectionNamespace string
	ClusterName             string
	ServeClusters           bool
	WebUI                   string
	Temporal                tclient.Options
	Zap                     zap.Options
	Sizing                  Sizing
}

// Sizing is how much one kok-manager replica takes on; see
// docs/design/2026-12-02-workers-and-watchers.md for the rule behind each default.
type Sizing struct {
	// WorkflowCacheSize is the process-wide sticky workflow cache, in workflows. Keep it at least
	// the number of workflows resident on this replica, or every workflow task replays history.
	WorkflowCacheSize int
	// WorkflowTaskPollers and ActivityTaskPollers are the most pollers per task queue; the SDK
	// scales between 1 and this by how busy the queue is.
	WorkflowTaskPollers int
	ActivityTaskPollers int
	// MaxConcurrentWorkflowTasks is how many workflow tasks run at once per control queue.
	MaxConcurrentWorkflowTasks int
	// MaxConcurrentActivities is how many activities run at once on the cluster queue.
	MaxConcurrentActivities int
	// MaxConcurrentReconciles is how many objects each watcher reconciles at once.
	MaxConcurrentReconciles int
}

// AddFlags registers the flags on fs, plus --kubeconfig and the log flags from the Go flag set.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint (/metrics); \"0\" turns it off.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "Elect one leader among replicas to run the watchers (workers run on every replica).")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "kok-system", "Namespace of the leader-election Lease.")
	fs.StringVar(&o.ClusterName, "cluster-name", "local", "Name of the cluster this manager's kubeconfig points at. It serves that cluster's Machines and the control activities of task queue kok-cluster-<name>; it is part of every workflow ID.")
	fs.BoolVar(&o.ServeClusters, "serve-clusters", true, "Serve the Cluster objects of this API server (a meta cluster): watch them, run their activities, and run every workflow (queues kok-control-0..15 and the legacy kok-control). A business cluster's machine operator runs with false: it serves only its cluster's Machines and API calls.")
	fs.StringVar(&o.WebUI, "temporal-ui-url", "http://127.0.0.1:8233", "Base URL of the Temporal Web UI, for the workflow links written into status; empty leaves them out.")
	fs.IntVar(&o.Sizing.WorkflowCacheSize, "workflow-cache-size", 10000, "Sticky workflow cache of this replica, in workflows (process-wide). Keep it at least the workflows resident on the replica (about 30-100 KB each); see docs/design/2026-12-02-workers-and-watchers.md.")
	fs.IntVar(&o.Sizing.WorkflowTaskPollers, "workflow-task-pollers", 8, "Most workflow-task pollers per control queue (the SDK scales between 1 and this).")
	fs.IntVar(&o.Sizing.ActivityTaskPollers, "activity-task-pollers", 16, "Most activity-task pollers on this cluster's queue kok-cluster-<name> (the SDK scales between 1 and this).")
	fs.IntVar(&o.Sizing.MaxConcurrentWorkflowTasks, "max-concurrent-workflow-tasks", 64, "Workflow tasks run at once per control queue.")
	fs.IntVar(&o.Sizing.MaxConcurrentActivities, "max-concurrent-activities", 500, "Activities run at once on queue kok-cluster-<name>.")
	fs.IntVar(&o.Sizing.MaxConcurrentReconciles, "max-concurrent-reconciles", 8, "Objects each watcher (Machine, Cluster) reconciles at once.")
	o.Temporal.AddFlags(fs)
	gofs := flag.NewFlagSet("", flag.ContinueOnError)
	o.Zap.BindFlags(gofs)
	gofs.VisitAll(func(f *flag.Flag) { fs.AddGoFlag(f) })
	if f := flag.CommandLine.Lookup("kubeconfig"); f != nil {
		fs.AddGoFlag(f)
	}
}

// NewScheme returns the scheme the manager's clients use: core types and every kok kind.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("core scheme: %w", err)
	}
	if err := kokv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("kok scheme: %w", err)
	}
	return s, nil
}

// Run starts the manager and the worker and blocks until ctx ends or either fails.
func Run(ctx context.Context, o Options) error {
	log := zap.New(zap.UseFlagOptions(&o.Zap))
	ctrl.SetLogger(log)
	slogger := slog.New(logr.ToSlogHandler(log.WithName("temporal")))

	if err := o.Temporal.Validate(); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:        o.ProbeAddr,
		LeaderElection:                o.LeaderElect,
		LeaderElectionID:              "kok-manager",
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         CacheOptions(),
		Client:                        ClientOptions(),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	tc, err := tclient.Dial(ctx, o.Temporal, slogger)
	if err != nil {
		return err
	}
	defer tc.Close()

	// Workflows run on the control shards (and the legacy kok-control, where runs started by
	// earlier releases live on); this cluster's API calls on its own queue, the only one whose
	// worker holds this cluster's credentials. Only the meta cluster's managers run workflows: a
	// machine operator is the binary of the release its cluster was created with, and workers of
	// one queue must all run the same workflow code, or a task replayed by an older one fails as
	// non-deterministic.
	if err := o.Sizing.validate(); err != nil {
		return err
	}
	// Process-wide, and read when the first worker starts.
	worker.SetStickyWorkflowCacheSize(o.Sizing.WorkflowCacheSize)
	queues := []string{queue.ClusterTaskQueue(o.ClusterName)}
	cluster := worker.New(tc, queue.ClusterTaskQueue(o.ClusterName), o.Sizing.activityWorker())
	runners := []worker.Worker{cluster}
	if o.ServeClusters {
		for _, q := range queue.ControlQueues() {
			control := worker.New(tc, q, o.Sizing.workflowWorker())
			controlworker.RegisterWorkflows(control)
			runners = append(runners, control)
			queues = append(queues, q)
		}
	}
	deps := controlworker.Deps{Kube: mgr.GetClient(), Temporal: tc}
	if o.ServeClusters {
		if deps.Direct, err = ctrlclient.New(cfg, ctrlclient.Options{Scheme: scheme}); err != nil {
			return fmt.Errorf("direct client: %w", err)
		}
		if deps.Operator, err = operatorConfig(o); err != nil {
			return err
		}
		controlworker.RegisterMetaActivities(cluster, deps)
	}
	controlworker.RegisterClusterActivities(cluster, deps)
	for _, w := range runners {
		if err := mgr.Add(&workerRunnable{w: w}); err != nil {
			return err
		}
	}

	if err := (&machinewatcher.Reconciler{
		Client: mgr.GetClient(), Temporal: tc, Cluster: o.ClusterName, WebUI: o.WebUI, Namespace: o.Temporal.Namespace,
		MaxConcurrentReconciles: o.Sizing.MaxConcurrentReconciles,
	}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up machine watcher: %w", err)
	}

	if o.ServeClusters {
		if err := (&clusterwatcher.Reconciler{
			Client: mgr.GetClient(), Temporal: tc, MetaCluster: o.ClusterName, WebUI: o.WebUI, Namespace: o.Temporal.Namespace,
			MaxConcurrentReconciles: o.Sizing.MaxConcurrentReconciles,
		}).SetupWithManager(mgr); err != nil {
			return fmt.Errorf("set up cluster watcher: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// Ready only while Temporal answers: a manager that cannot reach Temporal can neither start
	// workflows nor run them, and a readiness probe is how operators and `kok dev` see that.
	if err := mgr.AddReadyzCheck("temporal", temporalCheck(tc)); err != nil {
		return err
	}
	log.Info("starting kok-manager", "cluster", o.ClusterName, "taskQueues", queues, "sizing", o.Sizing, "temporal", o.Temporal.Address, "namespace", o.Temporal.Namespace)
	return mgr.Start(ctx)
}

// operatorConfig is how the machine operators this manager puts into new clusters reach
// Temporal: the same server and namespace, and the same codec keys (every process of one
// system must encrypt payloads alike).
func operatorConfig(o Options) (process.Operator, error) {
	op := process.Operator{TemporalAddress: o.Temporal.Address, TemporalNamespace: o.Temporal.Namespace, WebUI: o.WebUI}
	if o.Temporal.CodecKeyFile != "" {
		keys, err := os.ReadFile(o.Temporal.CodecKeyFile)
		if err != nil {
			return op, fmt.Errorf("read --codec-key-file for the machine operators: %w", err)
		}
		op.CodecKeys = string(keys)
	}
	return op, nil
}

func temporalCheck(tc client.Client) healthz.Checker {
	return func(req *http.Request) error {
		if _, err := tc.CheckHealth(req.Context(), &client.CheckHealthRequest{}); err != nil {
			return fmt.Errorf("temporal: %w", err)
		}
		return nil
	}
}

// workerRunnable runs the Temporal worker for the manager's lifetime, on every replica.
type workerRunnable struct{ w worker.Worker }

func (r *workerRunnable) Start(ctx context.Context) error {
	if err := r.w.Start(); err != nil {
		return fmt.Errorf("start temporal worker: %w", err)
	}
	<-ctx.Done()
	r.w.Stop()
	return nil
}

func (r *workerRunnable) NeedLeaderElection() bool { return false }
