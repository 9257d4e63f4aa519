package clusters

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/kubeflags"
	"kok.dev/cmd/kok/app/render"
)

const (
	// defaultPollInterval is how often a change is looked at: upgrades take minutes, and a
	// few seconds' delay in printing a step costs nothing.
	defaultPollInterval = 2 * time.Second
	// defaultTimeout is how long a change is followed: a 5-master upgrade with the default
	// 5m health timeout per master fits, with room for pulling artifacts.
	defaultTimeout = 30 * time.Minute
)

// NewClusterCommand returns `kok cluster` with the commands that change a Cluster.
func NewClusterCommand() *cobra.Command { return newClusterCommand(defaultPollInterval) }

func newClusterCommand(poll time.Duration) *cobra.Command {
	kube := &kubeflags.Flags{}
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Upgrade or roll back a Cluster's control plane and follow it to the end; resolve a wait for a human",
		Long: `Change a Cluster (a business cluster's control plane). Each command edits the Cluster's spec,
as kubectl edit or a GitOps tool would, and then follows the status kok's Cluster workflow writes
until the change is done or has failed. Interrupting the command stops the following, not the
change: kok describe cluster NAME shows it, and its workflow in the Temporal Web UI.`,
		Example: `  kok cluster upgrade prod-eu --to v1.37.2
  kok cluster rollback prod-eu
  kok cluster resolve prod-eu`,
	}
	kube.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(newUpgradeCommand(kube, poll), newRollbackCommand(kube, poll), newResolveCommand(kube))
	return cmd
}

// followFlags are the flags of a command that follows its change.
type followFlags struct {
	wait    bool
	timeout time.Duration
}

func (f *followFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.wait, "wait", true, "Follow the change until it is done or has failed; --wait=false only makes the edit.")
	cmd.Flags().DurationVar(&f.timeout, "timeout", defaultTimeout, "How long to follow the change before giving up (the change itself carries on).")
}

func newUpgradeCommand(kube *kubeflags.Flags, poll time.Duration) *cobra.Command {
	var to string
	var ff followFlags
	cmd := &cobra.Command{
		Use:   "upgrade NAME --to VERSION",
		Short: "Move a Cluster to another ClusterPackageVersion, one master at a time",
		Long: `Set the Cluster's spec.packageVersion to VERSION, a ClusterPackageVersion that must exist, and
follow the upgrade: kok checks every master, upgrades the canary master component by component,
waits for it to be healthy, then does the others one at a time. Each change of phase or step is
printed as a line. The command exits 0 when the Cluster runs VERSION, and non-zero with the
status's message when the upgrade fails, stops for a human, or was rolled back.`,
		Example: `  kok cluster upgrade prod-eu --to v1.37.2
  kok cluster upgrade prod-eu --to v1.37.2 --wait=false`,
		Args: oneCluster("upgrade"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return errors.New("name the version to upgrade to: kok cluster upgrade NAME --to VERSION (kubectl get clusterpackageversions lists them)")
			}
			cluster, err := kube.Connect()
			if err != nil {
				return err
			}
			return change(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cluster, args[0], poll, ff,
				func(*kokv1.Cluster) (string, string, error) { return to, "", nil })
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "The ClusterPackageVersion to move to (required).")
	ff.add(cmd)
	return cmd
}

func newRollbackCommand(kube *kubeflags.Flags, poll time.Duration) *cobra.Command {
	var to string
	var ff followFlags
	cmd := &cobra.Command{
		Use:   "rollback NAME [--to VERSION]",
		Short: "Move a Cluster back to the ClusterPackageVersion it ran before",
		Long: `Point the Cluster's spec.packageVersion back and follow the rollback, as kok cluster upgrade
follows an upgrade. Without --to, the version is the one the status names: while an upgrade or
rollback is in flight, the version it is moving from (status.currentPackageVersion), so that the
masters already moved go back; otherwise the version it ran before its last completed upgrade or
rollback (status.previousPackageVersion), so two rollbacks in a row return to where you started.`,
		Example: `  kok cluster rollback prod-eu
  kok cluster rollback prod-eu --to v1.36.3`,
		Args: oneCluster("rollback"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cluster, err := kube.Connect()
			if err != nil {
				return err
			}
			return change(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cluster, args[0], poll, ff, func(c *kokv1.Cluster) (string, string, error) {
				if to != "" {
					return to, "", nil
				}
				return rollbackTarget(c)
			})
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "The ClusterPackageVersion to move back to (default: from the status, see above).")
	ff.add(cmd)
	return cmd
}

func oneCluster(verb string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("name one cluster: kok cluster %s NAME (got %d names; kok get clusters lists them)", verb, len(args))
		}
		return nil
	}
}

// rollbackTarget is the version a rollback without --to moves c to, and why that one.
func rollbackTarget(c *kokv1.Cluster) (version, why string, err error) {
	st := &c.Status
	if st.TargetPackageVersion != "" && st.TargetPackageVersion != st.CurrentPackageVersion {
		if st.CurrentPackageVersion == "" {
			return "", "", fmt.Errorf("cluster %q has no version to roll back to: it is being created at %s and runs no version yet", c.Name, st.TargetPackageVersion)
		}
		return st.CurrentPackageVersion, fmt.Sprintf("the version it ran before the move to %s in flight", st.TargetPackageVersion), nil
	}
	if st.PreviousPackageVersion != "" {
		return st.PreviousPackageVersion, "the version it ran before", nil
	}
	return "", "", fmt.Errorf("cluster %q has no version to roll back to: no upgrade or rollback has completed (status.previousPackageVersion is empty) and none is in flight; name one with --to VERSION", c.Name)
}

// change sets spec.packageVersion of Cluster name to the version target chooses from the
// Cluster as it is read, retrying on conflict (the workflow's status writes change the
// resourceVersion too), and then follows the change unless ff says not to.
func change(ctx context.Context, out, errOut io.Writer, cluster *kubeflags.Cluster, name string, poll time.Duration, ff followFlags,
	target func(*kokv1.Cluster) (version, why string, err error)) error {
	var (
		c        kokv1.Cluster
		from     string
		want     string
		why      string
		verified = map[string]bool{}
	)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		// A fresh object each time: decoding into the last one would keep fields the
		// server has since dropped.
		c = kokv1.Cluster{}
		if err := cluster.Client.Get(ctx, types.NamespacedName{Name: name}, &c); err != nil {
			return getError(cluster, name, err)
		}
		if c.DeletionTimestamp != nil {
			return fmt.Errorf("cluster %q is being deleted: it cannot be changed", name)
		}
		var err error
		if want, why, err = target(&c); err != nil {
			return err
		}
		from = c.Spec.PackageVersion
		if from == want {
			return nil
		}
		if !verified[want] {
			if err := checkPackageVersion(ctx, cluster, want); err != nil {
				return err
			}
			verified[want] = true
		}
		c.Spec.PackageVersion = want
		if err := cluster.Client.Update(ctx, &c); err != nil {
			// Explain wraps: a conflict is still seen as one, and retried.
			return cluster.Explain(err, "update cluster "+name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if why != "" {
		why = ", " + why
	}
	if from == want {
		fmt.Fprintf(out, "cluster %s: spec.packageVersion is %s already%s (generation %d)\n", name, want, why, c.Generation)
	} else {
		fmt.Fprintf(out, "cluster %s: spec.packageVersion %s -> %s%s (generation %d)\n", name, from, want, why, c.Generation)
	}
	if c.Spec.Paused {
		fmt.Fprintf(errOut, "cluster %s is paused (spec.paused): nothing changes until it is resumed\n", name)
	}
	if !ff.wait {
		return nil
	}
	return follow(ctx, out, cluster, name, newProgress(&c, want), poll, ff.timeout)
}

// checkPackageVersion refuses a version the Cluster workflow could only refuse later: one
// that does not exist, or whose artifacts failed their checks.
func checkPackageVersion(ctx context.Context, cluster *kubeflags.Cluster, name string) error {
	var v kokv1.ClusterPackageVersion
	err := cluster.Client.Get(ctx, types.NamespacedName{Name: name}, &v)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("ClusterPackageVersion %q not found on %s (context %q): %s", name, cluster.Server, cluster.Context, knownPackageVersions(ctx, cluster))
	case err != nil:
		return cluster.Explain(err, "get ClusterPackageVersion "+name)
	case v.Status.Phase == kokv1.PackageVersionInvalid:
		why := "its artifacts failed their checks"
		if r := meta.FindStatusCondition(v.Status.Conditions, kokv1.ConditionReady); r != nil && r.Message != "" {
			why = render.Cell(r.Message, "")
		}
		return fmt.Errorf("ClusterPackageVersion %q is Invalid (%s): choose another", name, why)
	}
	return nil
}

// knownPackageVersions names the ClusterPackageVersions there are, for an error message.
func knownPackageVersions(ctx context.Context, cluster *kubeflags.Cluster) string {
	var list kokv1.ClusterPackageVersionList
	if err := cluster.Client.List(ctx, &list); err != nil {
		return "kubectl get clusterpackageversions lists those there are"
	}
	if len(list.Items) == 0 {
		return "there are none; create one first"
	}
	names := make([]string, len(list.Items))
	for i, v := range list.Items {
		names[i] = v.Name
	}
	sort.Strings(names)
	return "there are " + strings.Join(names, ", ")
}
