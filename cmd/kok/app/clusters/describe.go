package clusters

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/kubeflags"
	"kok.dev/cmd/kok/app/render"
)

// API defaults, for Clusters read before the API server applied them (and for tests).
const (
	defaultServiceCIDR       = "10.96.0.0/12"
	defaultPodCIDR           = "10.244.0.0/16"
	defaultAPIServerPort     = 6443
	defaultHealthTimeout     = 5 * time.Minute
	defaultCheckInterval     = 30 * time.Second
	defaultMaxAutoRecoveries = 3
	defaultRecoveryWindow    = time.Hour
)

// NewDescribeCommand returns `cluster`, the subcommand of `kok describe`.
func NewDescribeCommand(kube *kubeflags.Flags) *cobra.Command {
	return &cobra.Command{
		Use:     "cluster NAME",
		Aliases: []string{"clusters", "kc"},
		Short:   "Show one Cluster: versions, operation, masters and components, conditions, events, workflow",
		Long: `Show one Cluster in detail: what its spec asks for (package version, masters, network,
upgrade and health policy, component overrides), the package versions it runs, ran before and
moves to, the operation in flight with its step, each master with the version and health of each
of its components, every condition, the Cluster's last ` + fmt.Sprint(render.MaxEvents) + ` Events, and its Temporal workflow with
the Web UI link and the command that prints its history.`,
		Example: `  kok describe cluster prod-eu`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("name one cluster: kok describe cluster NAME (got %d names; kok get clusters lists them)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cluster, err := kube.Connect()
			if err != nil {
				return err
			}
			var c kokv1.Cluster
			if err := cluster.Client.Get(ctx, types.NamespacedName{Name: args[0]}, &c); err != nil {
				return getError(cluster, args[0], err)
			}
			// The Cluster is worth showing even when its Events cannot be read (say, RBAC
			// allows Clusters but not Events): the error takes the Events' place.
			events, err := render.ObjectEvents(ctx, cluster.Client, "Cluster", &c)
			if err != nil {
				err = cluster.Explain(err, "list events")
			}
			return printDescription(cmd.OutOrStdout(), &c, events, err, time.Now())
		},
	}
}

// getError is the error of getting Cluster name: which server lacks it, or why it could not be read.
func getError(cluster *kubeflags.Cluster, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("cluster %q not found on %s (context %q); kok get clusters lists them", name, cluster.Server, cluster.Context)
	}
	return cluster.Explain(err, "get cluster "+name)
}

// printDescription writes the description of c. events are c's Events in any order (or
// eventsErr, when they could not be read); now is the time ages are measured from.
func printDescription(out io.Writer, c *kokv1.Cluster, events []corev1.Event, eventsErr error, now time.Time) error {
	st := &c.Status
	d := render.NewDescriber()
	d.Line("Name:\t%s", c.Name)
	d.Line("Labels:\t%s", render.Labels(c.Labels))
	d.Line("Created:\t%s (%s ago)", c.CreationTimestamp.UTC().Format(time.RFC3339), render.Age(c.CreationTimestamp, now))
	if c.DeletionTimestamp != nil {
		d.Line("Deleting:\tsince %s ago, waiting for finalizers %s", render.Age(*c.DeletionTimestamp, now), render.Cell(strings.Join(c.Finalizers, ", "), render.None))
	}
	d.Line("Provider:\t%s", provider(c))
	d.Line("Phase:\t%s", render.Cell(string(st.Phase), render.None))
	d.Line("Paused:\t%t", c.Spec.Paused)
	d.Line("Deletion Policy:\t%s", render.Cell(string(c.Spec.DeletionPolicy), string(kokv1.DeletionPolicyDelete)))
	d.Line("Generation:\t%s", render.Generation(c.Generation, st.ObservedGeneration))
	d.Line("Endpoint:\t%s", render.Cell(st.Endpoint, render.None))
	d.Line("Kubeconfig:\t%s", kubeconfigLine(c))
	d.Line("Masters:\t%s", mastersLine(c))
	d.Line("Network:\t%s", networkLine(&c.Spec.Network))
	d.Line("Upgrade:\t%s", upgradeLine(&c.Spec.Upgrade))
	d.Line("Health:\t%s", healthLine(c))

	d.Line("Package Versions:")
	d.Row("Spec:\t" + render.Cell(c.Spec.PackageVersion, render.None))
	d.Row("Current:\t" + render.Cell(st.CurrentPackageVersion, render.None))
	d.Row("Previous:\t" + render.Cell(st.PreviousPackageVersion, render.None))
	d.Row("Target:\t" + render.Cell(st.TargetPackageVersion, render.None))

	d.Line("Component Overrides:")
	if len(c.Spec.Components) == 0 {
		d.Row(render.None)
	} else {
		d.Row("NAME", "ARGS")
		for _, o := range c.Spec.Components {
			d.Row(string(o.Name), render.Cell(argList(o.Args), render.None))
		}
	}

	d.Line("Operation:")
	if op := st.Operation; op == nil {
		d.Row(render.None)
	} else {
		d.Row("Type:\t" + string(op.Type))
		d.Row("Step:\t" + render.Cell(op.Step, render.None))
		if op.Message != "" {
			d.Row("Message:\t" + render.Cell(op.Message, ""))
		}
		if op.CanaryHost != "" {
			d.Row("Canary:\t" + op.CanaryHost)
		}
		if op.StartedAt != nil {
			d.Row(fmt.Sprintf("Started:\t%s (%s ago)", op.StartedAt.UTC().Format(time.RFC3339), render.Age(*op.StartedAt, now)))
		}
	}

	d.Line("Master Status:")
	if len(st.Masters) == 0 {
		d.Row(render.None)
	} else {
		d.Row("HOST", "PHASE", "READY", "COMPONENT", "VERSION", "READY", "MESSAGE")
		for _, m := range st.Masters {
			master := []string{m.Host, render.Cell(string(m.Phase), render.None), fmt.Sprint(m.Ready)}
			if len(m.Components) == 0 {
				d.Row(append(master, render.None)...)
				continue
			}
			for i, comp := range m.Components {
				if i > 0 {
					master = []string{"", "", ""}
				}
				d.Row(append(master, string(comp.Name), render.Cell(comp.Version, render.None), fmt.Sprint(comp.Ready), render.Cell(comp.Message, ""))...)
			}
		}
	}

	d.Conditions(st.Conditions, now)
	d.Events(events, eventsErr, now)
	d.Workflow(st.Workflow, "Cluster")
	return d.Print(out)
}

// kubeconfigLine says where the admin kubeconfig is and how to get it.
func kubeconfigLine(c *kokv1.Cluster) string {
	ref := c.Status.KubeconfigSecretRef
	if ref == nil {
		return "<none> yet"
	}
	return fmt.Sprintf("Secret %s/%s, key %s (kok kubeconfig %s prints it)", ref.Namespace, ref.Name, ref.Key, c.Name)
}

// mastersLine is how many masters the spec asks for, where they run and how many are ready.
func mastersLine(c *kokv1.Cluster) string {
	where := "as pods in the meta cluster"
	if provider(c) != kokv1.ProviderKok {
		where = "on " + render.Cell(strings.Join(c.Spec.Masters.Hosts, ", "), render.None)
	}
	return fmt.Sprintf("%d %s, %d ready", masterCount(c), where, c.Status.ReadyMasters)
}

func networkLine(n *kokv1.ClusterNetwork) string {
	port := n.APIServerPort
	if port == 0 {
		port = defaultAPIServerPort
	}
	return fmt.Sprintf("services %s, pods %s, API server port %d, control-plane endpoint %s",
		orDefault(n.ServiceCIDR, defaultServiceCIDR), orDefault(n.PodCIDR, defaultPodCIDR), port,
		render.Cell(n.ControlPlaneEndpoint, "<the masters' addresses>"))
}

func upgradeLine(u *kokv1.ClusterUpgrade) string {
	onFailure := "roll back"
	if u.AutoRollback != nil && !*u.AutoRollback {
		onFailure = "wait for a human"
	}
	return fmt.Sprintf("each master healthy within %s, else %s", durationOr(u.HealthTimeout, defaultHealthTimeout), onFailure)
}

func healthLine(c *kokv1.Cluster) string {
	h := &c.Spec.Health
	limit := int32(defaultMaxAutoRecoveries)
	if h.MaxAutoRecoveries != nil {
		limit = *h.MaxAutoRecoveries
	}
	every := fmt.Sprintf("checked every %s", durationOr(h.CheckInterval, defaultCheckInterval))
	if limit == 0 {
		return every + ", automatic recovery off"
	}
	return fmt.Sprintf("%s, at most %d automatic recoveries per %s (%d so far)",
		every, limit, durationOr(h.Window, defaultRecoveryWindow), c.Status.RecentAutoRecoveries)
}

// argList is a component's flag overrides, sorted: --name=value ...
func argList(args map[string]string) string {
	flags := make([]string, 0, len(args))
	for k, v := range args {
		flags = append(flags, "--"+k+"="+v)
	}
	sort.Strings(flags)
	return strings.Join(flags, " ")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}
