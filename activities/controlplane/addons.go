package controlplane

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	pkiacts "kok.dev/activities/pki"
	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/crds"
)

// InstallAddonsParams names the new cluster.
type InstallAddonsParams struct{ Cluster string }

// InstallAddonsResult says what was applied.
type InstallAddonsResult struct {
	CRDs      []string
	Namespace string
}

// InstallAddons makes the business cluster ready for its machine operator: kok's CRDs (the
// ones this kok was built with) and the kok-system namespace (Condition ConfigMaps, the
// operator's leader-election Lease). Server-side apply makes a second run a no-op.
func (a *Activities) InstallAddons(ctx context.Context, p InstallAddonsParams) (InstallAddonsResult, error) {
	kc, err := pkiacts.AdminKubeconfig(ctx, a.Client, p.Cluster, "")
	if err != nil {
		return InstallAddonsResult{}, err
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		return InstallAddonsResult{}, fmt.Errorf("admin kubeconfig of %s: %w", p.Cluster, err)
	}
	scheme := runtime.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return InstallAddonsResult{}, err
	}
	if err := corev1.AddToScheme(scheme); err != nil {
		return InstallAddonsResult{}, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return InstallAddonsResult{}, fmt.Errorf("client for cluster %s: %w", p.Cluster, err)
	}
	all, err := crds.All()
	if err != nil {
		return InstallAddonsResult{}, err
	}
	var res InstallAddonsResult
	for _, crd := range all {
		if err := ensureCRD(ctx, c, crd); err != nil {
			return res, fmt.Errorf("apply CRD %s to cluster %s: %w", crd.Name, p.Cluster, err)
		}
		res.CRDs = append(res.CRDs, crd.Name)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kokv1.ConditionNamespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return res, fmt.Errorf("create namespace %s in cluster %s: %w", ns.Name, p.Cluster, err)
	}
	res.Namespace = ns.Name
	return res, nil
}

// ensureCRD creates the CRD, or replaces its spec when it differs (a kok upgrade brings new
// definitions); an equal one is left alone.
func ensureCRD(ctx context.Context, c client.Client, want *apiextensionsv1.CustomResourceDefinition) error {
	var have apiextensionsv1.CustomResourceDefinition
	err := c.Get(ctx, client.ObjectKeyFromObject(want), &have)
	switch {
	case apierrors.IsNotFound(err):
		return c.Create(ctx, want)
	case err != nil:
		return err
	case equality.Semantic.DeepEqual(have.Spec, want.Spec):
		return nil
	}
	have.Spec = want.Spec
	return c.Update(ctx, &have)
}
