package clusters

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/kubeflags"
)

func newResolveCommand(kube *kubeflags.Flags) *cobra.Command {
	return &cobra.Command{
		Use:   "resolve NAME",
		Short: "Tell a Cluster waiting for a human that the cause is fixed",
		Long: `A Cluster whose masters stayed unhealthy after spec.health.maxAutoRecoveries automatic
recoveries (or whose rollback failed) waits in phase WaitingForHuman. Once you have fixed the
cause, resolve it: the command writes the time into the annotation ` + kokv1.AnnotationResolve + `, and
the Cluster workflow goes on at once, with its recovery budget started again. Each new value
resolves one wait; a value written while nothing waits resolves nothing later. (A wait whose
masters pass their health checks several times in a row also ends by itself.)`,
		Example: `  kok cluster resolve prod-eu`,
		Args:    oneCluster("resolve"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cluster, err := kube.Connect()
			if err != nil {
				return err
			}
			return resolve(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), cluster, args[0], time.Now())
		},
	}
}

// resolve writes now into the resolve annotation of Cluster name, by a merge patch (no
// conflict with the workflow's status writes), and says what the Cluster waited for.
func resolve(ctx context.Context, out, errOut io.Writer, cluster *kubeflags.Cluster, name string, now time.Time) error {
	var c kokv1.Cluster
	if err := cluster.Client.Get(ctx, types.NamespacedName{Name: name}, &c); err != nil {
		return getError(cluster, name, err)
	}
	value := now.UTC().Format(time.RFC3339Nano)
	patch := client.MergeFrom(c.DeepCopy())
	if c.Annotations == nil {
		c.Annotations = map[string]string{}
	}
	c.Annotations[kokv1.AnnotationResolve] = value
	if err := cluster.Client.Patch(ctx, &c, patch); err != nil {
		return cluster.Explain(err, "annotate cluster "+name)
	}
	fmt.Fprintf(out, "cluster %s: %s=%s\n", name, kokv1.AnnotationResolve, value)
	if c.Status.Phase != kokv1.ClusterWaitingForHuman {
		fmt.Fprintf(errOut, "cluster %s is %s, not waiting for a human: this resolves nothing\n", name, phaseOrPending(c.Status.Phase))
		return nil
	}
	if ready := meta.FindStatusCondition(c.Status.Conditions, kokv1.ConditionReady); ready != nil {
		fmt.Fprintf(out, "it waited for: %s\n", ready.Message)
	}
	return nil
}

func phaseOrPending(p kokv1.ClusterPhase) kokv1.ClusterPhase {
	if p == "" {
		return kokv1.ClusterPending
	}
	return p
}
