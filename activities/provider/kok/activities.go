package kok

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
)

// Application error types of failures that no retry fixes. The Cluster workflow turns them into
// conditions and waits for the spec or the catalogue to change.
const (
	// ErrTypeInvalidParams: the parameters cannot work (an empty cluster name, say).
	ErrTypeInvalidParams = "InvalidControlPlaneParams"
	// ErrTypeClusterNotFound: the Cluster does not exist (any more).
	ErrTypeClusterNotFound = "ClusterNotFound"
	// ErrTypeWrongProvider: the Cluster's spec.provider is not kok.
	ErrTypeWrongProvider = "WrongProvider"
	// ErrTypeClusterDeleting: the Cluster is being deleted; Ensure would bring back what Delete
	// removes.
	ErrTypeClusterDeleting = "ClusterDeleting"
	// ErrTypePackageVersionNotFound: the named ClusterPackageVersion does not exist.
	ErrTypePackageVersionNotFound = "PackageVersionNotFound"
	// ErrTypeInvalidPackageVersion: the ClusterPackageVersion cannot run on provider kok (see
	// ErrInvalidPackageVersion).
	ErrTypeInvalidPackageVersion = "InvalidPackageVersion"
	// ErrTypeInvalidSpec: the Cluster's spec cannot be rendered (see ErrInvalidSpec).
	ErrTypeInvalidSpec = "InvalidClusterSpec"
	// ErrTypePKIMissing: a PKI Secret the pods mount is missing: pki.EnsureClusterPKI, with
	// PKIParams, must run first.
	ErrTypePKIMissing = "ClusterPKIMissing"
	// ErrTypeMastersChanged: etcd runs with another member count; changing it needs membership
	// changes that the provider does not make.
	ErrTypeMastersChanged = "MastersChanged"
	// ErrTypeRejected: the meta cluster's API server refused an object as invalid (an
	// immutable field changed, say).
	ErrTypeRejected = "ControlPlaneRejected"
)

// Activities run a business cluster's control plane in the meta cluster through Client. An
// uncached client suits them: they read what they just wrote.
type Activities struct {
	Client client.Client
	// Operator configures every cluster's machine operator (nil: kok-manager's defaults). It is
	// the worker's configuration, so its codec keys never pass through workflow history.
	Operator *Operator
	// EtcdStorage gives etcd members volume claims; nil gives them emptyDirs (see Input).
	EtcdStorage *EtcdStorage
}

// EnsureParams names the cluster and the version to run. Masters, Network and Components are the
// Cluster spec the workflow acts on; their zero values (0, nil, nil) read the Cluster's own. A
// non-nil empty Components means no overrides (JSON keeps nil and [] apart: no omitempty).
type EnsureParams struct {
	Cluster string
	// Namespace holds the control plane and its PKI; empty means pki.Namespace(Cluster).
	Namespace string
	// PackageVersion is the ClusterPackageVersion to run: spec.packageVersion, or during a
	// rollback the version rolled back to.
	PackageVersion string
	Masters        int32
	Network        *kokv1.ClusterNetwork
	Components     []kokv1.ClusterComponent
}

// EnsureResult says what the call changed, by "Kind/name".
type EnsureResult struct {
	Namespace      string
	PackageVersion string
	// Objects are every object of the control plane, in apply order.
	Objects []string
	// Created and Updated are the objects this call created or changed; Deleted those of an
	// earlier version that this one no longer has (a machine operator, say). All empty: the
	// control plane already matched.
	Created []string
	Updated []string
	Deleted []string
}

// Changed says whether the call changed anything.
func (r EnsureResult) Changed() bool {
	return len(r.Created)+len(r.Updated)+len(r.Deleted) > 0
}

// EnsureControlPlane makes the control plane in the meta cluster match the package version and
// the Cluster's spec: it renders the objects, applies them server-side (field owner "kok"; an
// unchanged object is not written) and deletes objects of the cluster that the render no longer
// has. It returns at once; ControlPlaneStatus tells when the rollout is done.
func (a *Activities) EnsureControlPlane(ctx context.Context, p EnsureParams) (EnsureResult, error) {
	ns, err := target(p.Cluster, p.Namespace)
	if err != nil {
		return EnsureResult{}, nonRetryable(ErrTypeInvalidParams, err)
	}
	if p.PackageVersion == "" {
		return EnsureResult{}, nonRetryable(ErrTypeInvalidParams, errors.New("no package version named"))
	}
	in, err := a.input(ctx, p, ns)
	if err != nil {
		return EnsureResult{}, err
	}
	objs, err := Render(in)
	if err != nil {
		return EnsureResult{}, classify(fmt.Errorf("cluster %s: %w", p.Cluster, err))
	}
	if err := a.checkPKI(ctx, ns, p.Cluster, SecretsUsed(objs)); err != nil {
		return EnsureResult{}, err
	}
	if err := a.checkMasters(ctx, ns, p.Cluster, in.Masters); err != nil {
		return EnsureResult{}, err
	}

	existing := map[string]metav1.PartialObjectMetadata{}
	for _, gvk := range renderedKinds {
		items, err := a.listOwned(ctx, ns, p.Cluster, gvk)
		if err != nil {
			return EnsureResult{}, err
		}
		for _, o := range items {
			existing[ref(gvk.Kind, o.Name)] = o
		}
	}

	res := EnsureResult{Namespace: ns, PackageVersion: p.PackageVersion}
	wanted := map[string]bool{}
	for _, obj := range objs {
		name := ref(obj.GetObjectKind().GroupVersionKind().Kind, obj.GetName())
		wanted[name] = true
		res.Objects = append(res.Objects, name)
		after, err := a.apply(ctx, obj)
		if err != nil {
			return EnsureResult{}, err
		}
		switch old, ok := existing[name]; {
		case !ok:
			res.Created = append(res.Created, name)
		case changed(old.ObjectMeta, after):
			res.Updated = append(res.Updated, name)
		}
	}
	for _, name := range sortedKeys(existing) {
		if wanted[name] {
			continue
		}
		o := existing[name]
		if err := a.delete(ctx, &o); err != nil {
			return EnsureResult{}, err
		}
		res.Deleted = append(res.Deleted, name)
	}
	return res, nil
}

// input gathers what Render needs: the release, and the spec from p or else from the Cluster.
func (a *Activities) input(ctx context.Context, p EnsureParams, ns string) (Input, error) {
	var cl kokv1.Cluster
	if err := a.Client.Get(ctx, client.ObjectKey{Name: p.Cluster}, &cl); err != nil {
		if apierrors.IsNotFound(err) {
			return Input{}, nonRetryable(ErrTypeClusterNotFound, fmt.Errorf("cluster %s does not exist", p.Cluster))
		}
		return Input{}, fmt.Errorf("get cluster %s: %w", p.Cluster, err)
	}
	if cl.Spec.Provider != kokv1.ProviderKok {
		return Input{}, nonRetryable(ErrTypeWrongProvider, fmt.Errorf("cluster %s has provider %q, not %q", p.Cluster, cl.Spec.Provider, kokv1.ProviderKok))
	}
	if cl.DeletionTimestamp != nil {
		return Input{}, nonRetryable(ErrTypeClusterDeleting, fmt.Errorf("cluster %s is being deleted: its control plane is not brought up again", p.Cluster))
	}
	var cpv kokv1.ClusterPackageVersion
	if err := a.Client.Get(ctx, client.ObjectKey{Name: p.PackageVersion}, &cpv); err != nil {
		if apierrors.IsNotFound(err) {
			return Input{}, nonRetryable(ErrTypePackageVersionNotFound, fmt.Errorf("cluster %s: ClusterPackageVersion %s does not exist", p.Cluster, p.PackageVersion))
		}
		return Input{}, fmt.Errorf("get ClusterPackageVersion %s: %w", p.PackageVersion, err)
	}
	in := Input{
		Cluster: p.Cluster, Namespace: ns,
		PackageVersion: p.PackageVersion, Release: cpv.Spec,
		Masters: p.Masters, Overrides: p.Components,
		Operator: a.Operator, EtcdStorage: a.EtcdStorage,
	}
	if in.Masters == 0 {
		in.Masters = cl.Spec.Masters.Count
		if in.Masters == 0 {
			in.Masters = 1 // the API's default
		}
	}
	if p.Network != nil {
		in.Network = *p.Network
	} else {
		in.Network = cl.Spec.Network
	}
	if p.Components == nil {
		in.Overrides = cl.Spec.Components
	}
	return in, nil
}

// checkPKI makes sure every Secret the pods mount exists; otherwise they would wait in
// ContainerCreating, an error only the kubelet's events tell. It reads metadata only, never keys.
func (a *Activities) checkPKI(ctx context.Context, ns, cluster string, names []string) error {
	var missing []string
	for _, name := range names {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Secret"})
		err := a.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, m)
		switch {
		case apierrors.IsNotFound(err):
			missing = append(missing, name)
		case err != nil:
			return fmt.Errorf("get Secret %s/%s: %w", ns, name, err)
		}
	}
	if len(missing) > 0 {
		return nonRetryable(ErrTypePKIMissing, fmt.Errorf("cluster %s: PKI Secrets missing in %s: %s (run EnsureClusterPKI with kok.PKIParams first)", cluster, ns, strings.Join(missing, ", ")))
	}
	return nil
}

// checkMasters refuses to change the member count of a running etcd.
func (a *Activities) checkMasters(ctx context.Context, ns, cluster string, masters int32) error {
	var sts appsv1.StatefulSet
	err := a.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: ObjectName(cluster, kokv1.ComponentEtcd)}, &sts)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get etcd of %s: %w", cluster, err)
	}
	if sts.Spec.Replicas != nil && *sts.Spec.Replicas != masters {
		return nonRetryable(ErrTypeMastersChanged, fmt.Errorf("cluster %s: etcd runs %d members, not %d: the kok provider does not change etcd membership", cluster, *sts.Spec.Replicas, masters))
	}
	return nil
}

// changed says whether an apply changed an object. Workloads count by generation, which only
// their spec moves: kube-controller-manager writes annotations and status to new Deployments
// at any moment, which bumps the resourceVersion without the apply having changed anything.
// Objects without a generation (Services, Secrets) count by resourceVersion.
func changed(before, after metav1.ObjectMeta) bool {
	if after.Generation != 0 {
		return before.Generation != after.Generation
	}
	return before.ResourceVersion != after.ResourceVersion
}

// apply writes obj by server-side apply and returns its metadata afterwards.
func (a *Activities) apply(ctx context.Context, obj client.Object) (metav1.ObjectMeta, error) {
	// Through JSON, so that only fields Render set (omitempty) are applied and owned.
	data, err := json.Marshal(obj)
	if err != nil {
		return metav1.ObjectMeta{}, err
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(data, &u.Object); err != nil {
		return metav1.ObjectMeta{}, err
	}
	delete(u.Object, "status")
	name := ref(u.GetKind(), u.GetName())
	if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		if apierrors.IsInvalid(err) {
			return metav1.ObjectMeta{}, nonRetryable(ErrTypeRejected, fmt.Errorf("apply %s in %s: %w", name, u.GetNamespace(), err))
		}
		return metav1.ObjectMeta{}, fmt.Errorf("apply %s in %s: %w", name, u.GetNamespace(), err)
	}
	return metav1.ObjectMeta{ResourceVersion: u.GetResourceVersion(), Generation: u.GetGeneration()}, nil
}

// DeleteParams names the cluster whose control plane goes.
type DeleteParams struct {
	Cluster string
	// Namespace holds the control plane; empty means pki.Namespace(Cluster).
	Namespace string
}

// DeleteResult says what the call deleted and what is still there, by "Kind/name".
type DeleteResult struct {
	// Deleted are the objects this call asked the API server to delete.
	Deleted []string
	// Left are the control plane's objects that still exist: those being deleted, and the
	// ReplicaSets, Pods, ControllerRevisions and volume claims that the meta cluster's garbage
	// collector and kubelets remove after them. Empty: the control plane is gone.
	Left []string
}

// DeleteControlPlane deletes every object the provider rendered for the cluster (found by label,
// whoever owns them) and etcd's volume claims. It leaves the PKI Secrets (DeleteClusterPKI) and
// the namespace, which the workflow removes last. Call it until Left is empty; a second call
// deletes nothing new and succeeds.
func (a *Activities) DeleteControlPlane(ctx context.Context, p DeleteParams) (DeleteResult, error) {
	ns, err := target(p.Cluster, p.Namespace)
	if err != nil {
		return DeleteResult{}, nonRetryable(ErrTypeInvalidParams, err)
	}
	var res DeleteResult
	// Workloads first (renderedKinds' order), so no pod restarts for want of a Service or Secret.
	for _, gvk := range slices.Concat(renderedKinds, []schema.GroupVersionKind{pvcKind}) {
		items, err := a.listOwned(ctx, ns, p.Cluster, gvk)
		if err != nil {
			return DeleteResult{}, err
		}
		for i := range items {
			if items[i].DeletionTimestamp != nil {
				continue
			}
			if err := a.delete(ctx, &items[i]); err != nil {
				return DeleteResult{}, err
			}
			res.Deleted = append(res.Deleted, ref(gvk.Kind, items[i].Name))
		}
	}
	for _, gvk := range slices.Concat(renderedKinds, dependentKinds, []schema.GroupVersionKind{pvcKind}) {
		items, err := a.listOwned(ctx, ns, p.Cluster, gvk)
		if err != nil {
			return DeleteResult{}, err
		}
		for _, o := range items {
			res.Left = append(res.Left, ref(gvk.Kind, o.Name))
		}
	}
	slices.Sort(res.Left)
	return res, nil
}

var (
	serviceKind = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	secretKind  = schema.GroupVersionKind{Version: "v1", Kind: "Secret"}
	pvcKind     = schema.GroupVersionKind{Version: "v1", Kind: "PersistentVolumeClaim"}
	podKind     = schema.GroupVersionKind{Version: "v1", Kind: "Pod"}
	// renderedKinds are the kinds Render returns, workloads first.
	renderedKinds = []schema.GroupVersionKind{
		appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
		appsv1.SchemeGroupVersion.WithKind("Deployment"),
		serviceKind,
		secretKind,
	}
	// dependentKinds are made from the workloads by the meta cluster's controllers; they carry
	// the pod templates' labels.
	dependentKinds = []schema.GroupVersionKind{
		appsv1.SchemeGroupVersion.WithKind("ReplicaSet"),
		appsv1.SchemeGroupVersion.WithKind("ControllerRevision"),
		podKind,
	}
)

// listOwned lists, metadata only (a Secret's data is never read), the objects of one kind that
// the provider rendered for cluster, or that were made from them.
func (a *Activities) listOwned(ctx context.Context, ns, cluster string, gvk schema.GroupVersionKind) ([]metav1.PartialObjectMetadata, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := a.Client.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{LabelCluster: cluster, LabelProvider: ProviderValue}); err != nil {
		return nil, fmt.Errorf("list %ss of %s in %s: %w", gvk.Kind, cluster, ns, err)
	}
	for i := range list.Items {
		list.Items[i].SetGroupVersionKind(gvk)
	}
	slices.SortFunc(list.Items, func(x, y metav1.PartialObjectMetadata) int { return strings.Compare(x.Name, y.Name) })
	return list.Items, nil
}

func (a *Activities) delete(ctx context.Context, o *metav1.PartialObjectMetadata) error {
	// The UID precondition keeps a retry from deleting an object recreated meanwhile.
	err := a.Client.Delete(ctx, o, client.Preconditions{UID: &o.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s/%s: %w", o.Kind, o.Namespace, o.Name, err)
	}
	return nil
}

// target checks the cluster name and returns the namespace.
func target(cluster, namespace string) (string, error) {
	if cluster == "" {
		return "", errors.New("cluster name is empty")
	}
	if errs := validation.IsValidLabelValue(cluster); len(errs) > 0 {
		return "", fmt.Errorf("cluster name %q cannot be a label value: %s", cluster, strings.Join(errs, "; "))
	}
	ns := namespaceOr(cluster, namespace)
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
	}
	return ns, nil
}

// classify makes Render's errors non-retryable, typed by whose input was wrong.
func classify(err error) error {
	switch {
	case errors.Is(err, ErrInvalidPackageVersion):
		return nonRetryable(ErrTypeInvalidPackageVersion, err)
	case errors.Is(err, ErrInvalidSpec):
		return nonRetryable(ErrTypeInvalidSpec, err)
	}
	return nonRetryable(ErrTypeInvalidParams, err)
}

func nonRetryable(typ string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, err)
}

func ref(kind, name string) string { return kind + "/" + name }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
