package machines

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/kubeflags"
)

// NewMachineCommand returns `kok machine`, the verbs that act on one Machine.
func NewMachineCommand() *cobra.Command {
	kube := &kubeflags.Flags{}
	cmd := &cobra.Command{
		Use:     "machine",
		Aliases: []string{"mach"},
		Short:   "Act on a Machine: retry the packages its workflow gave up on",
		Long: `Act on one Machine (a node of a business cluster), with --kubeconfig of that cluster. Each
command writes to the Machine as kubectl would; the Machine's workflow does the rest, and
kok describe machine NAME shows how it goes.`,
		Example: `  kok machine retry worker-7`,
	}
	kube.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(newRetryCommand(kube, time.Now))
	return cmd
}

func newRetryCommand(kube *kubeflags.Flags, now func() time.Time) *cobra.Command {
	return &cobra.Command{
		Use:   "retry NAME",
		Short: "Retry the packages a Machine remembers as failed, without editing its spec",
		Long: `A package whose install failed for good (a checksum mismatch, a bad spec, an install the agent
rolled back, a health check that failed after the install) is not tried again until the
Machine's spec changes: retrying would fail the same way. Once the cause is fixed outside the
spec (the artifact server serves the right file again, the host is repaired), retry tells the
Machine's workflow to try them once more. It sets the annotation ` + kokv1.AnnotationRetry + ` to the current time;
the workflow acts once per distinct value.`,
		Example: `  kok machine retry worker-7 --kubeconfig business.kubeconfig`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cluster, err := kube.Connect()
			if err != nil {
				return err
			}
			value := now().UTC().Format(time.RFC3339)
			if err := setRetry(cmd.Context(), cluster, args[0], value); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "machine/%s annotated %s=%s: its workflow retries the packages it remembers as failed (kok describe machine %s)\n",
				args[0], kokv1.AnnotationRetry, value, args[0])
			return nil
		},
	}
}

// setRetry merge-patches the retry annotation: no read-modify-write, so it never races with the
// workflow's status writes or another client's edits.
func setRetry(ctx context.Context, cluster *kubeflags.Cluster, name, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{kokv1.AnnotationRetry: value}}})
	if err != nil {
		return err
	}
	m := &kokv1.Machine{}
	m.Name = name
	if err := cluster.Client.Patch(ctx, m, client.RawPatch(types.MergePatchType, patch)); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("machine %q not found on %s (context %q); kok get machines lists them", name, cluster.Server, cluster.Context)
		}
		return cluster.Explain(err, "annotate machine "+name)
	}
	return nil
}
