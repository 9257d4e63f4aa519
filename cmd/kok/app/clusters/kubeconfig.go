package clusters

import (
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"kok.dev/activities/pki"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/cmd/kok/app/kubeflags"
	"kok.dev/cmd/kok/app/render"
	clusterpki "kok.dev/internal/pki"
)

// NewKubeconfigCommand returns `kok kubeconfig`.
func NewKubeconfigCommand() *cobra.Command {
	kube := &kubeflags.Flags{}
	cmd := &cobra.Command{
		Use:   "kubeconfig NAME",
		Short: "Print a Cluster's admin kubeconfig",
		Long: `Print the admin kubeconfig of a business cluster, read from the meta cluster: the Secret that
the Cluster's status.kubeconfigSecretRef names or, before kok reports one, the Secret kok's PKI
writes it to (namespace kok-cluster-NAME, Secret NAME-admin-kubeconfig, key kubeconfig).
It grants system:masters: keep it as you would a root password.`,
		Example: `  kok kubeconfig prod-eu > prod-eu.kubeconfig
  kubectl --kubeconfig prod-eu.kubeconfig get nodes`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("name one cluster: kok kubeconfig NAME (got %d names; kok get clusters lists them)", len(args))
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
			ref, reported := adminKubeconfigRef(&c)
			var s corev1.Secret
			err = cluster.Client.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, &s)
			if err != nil && !apierrors.IsNotFound(err) {
				return cluster.Explain(err, fmt.Sprintf("get Secret %s/%s", ref.Namespace, ref.Name))
			}
			kubeconfig := s.Data[ref.Key]
			if len(kubeconfig) == 0 {
				return noKubeconfigError(&c, ref, reported, err == nil)
			}
			_, err = cmd.OutOrStdout().Write(kubeconfig)
			return err
		},
	}
	kube.AddFlags(cmd.Flags())
	return cmd
}

// adminKubeconfigRef is where c's admin kubeconfig is: status.kubeconfigSecretRef (reported),
// or, until kok reports it, where kok's PKI activities write it.
func adminKubeconfigRef(c *kokv1.Cluster) (ref kokv1.SecretKeyRef, reported bool) {
	if r := c.Status.KubeconfigSecretRef; r != nil && r.Name != "" {
		return *r, true
	}
	return kokv1.SecretKeyRef{
		Namespace: pki.Namespace(c.Name),
		Name:      pki.SecretName(c.Name, pki.KubeconfigPart(clusterpki.Admin)),
		Key:       pki.KeyKubeconfig,
	}, false
}

// noKubeconfigError says why c has no admin kubeconfig at ref: most often because the cluster
// is still being created, which only needs patience; otherwise which Secret or key is missing.
func noKubeconfigError(c *kokv1.Cluster, ref kokv1.SecretKeyRef, reported, secretExists bool) error {
	where := fmt.Sprintf("Secret %s/%s has no key %q", ref.Namespace, ref.Name, ref.Key)
	if !secretExists {
		where = fmt.Sprintf("Secret %s/%s does not exist", ref.Namespace, ref.Name)
	}
	switch {
	case reported:
		return fmt.Errorf("cluster %q has no admin kubeconfig: its status.kubeconfigSecretRef names it, but %s; kok describe cluster %s shows what kok reports", c.Name, where, c.Name)
	case c.Status.Phase == kokv1.ClusterRunning:
		return fmt.Errorf("cluster %q is Running but has no admin kubeconfig: status.kubeconfigSecretRef is not set and %s", c.Name, where)
	default:
		return fmt.Errorf("cluster %q has no admin kubeconfig yet (phase %s): wait for it to be Running", c.Name, render.Cell(string(c.Status.Phase), render.None))
	}
}
