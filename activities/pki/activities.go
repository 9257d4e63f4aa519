package pki

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.temporal.io/sdk/temporal"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	clusterpki "kok.dev/internal/pki"
)

const (
	// LabelCluster names the business cluster a Secret (or namespace) belongs to.
	LabelCluster = "kok.dev/cluster"
	// LabelPKI marks a Secret as part of a cluster's PKI; the value is its kind
	// (PKIAuthority, PKICertificate, PKIServiceAccountKey or PKIKubeconfig).
	LabelPKI = "kok.dev/pki"

	PKIAuthority         = "authority"
	PKICertificate       = "certificate"
	PKIServiceAccountKey = "service-account-key"
	PKIKubeconfig        = "kubeconfig"

	// KeyCACert is, in a certificate's Secret, the authority that signed it: what the other
	// side of a connection trusts.
	KeyCACert = "ca.crt"
	// KeyServiceAccountPrivate and KeyServiceAccountPublic hold the service-account key pair.
	KeyServiceAccountPrivate = "sa.key"
	KeyServiceAccountPublic  = "sa.pub"
	// KeyKubeconfig holds a kubeconfig in the kubeconfig Secrets.
	KeyKubeconfig = "kubeconfig"

	// ServiceAccountKey names the Secret part of the service-account key pair.
	ServiceAccountKey = "sa"

	// ErrTypeInvalidParams is the application error type of parameters that cannot work.
	ErrTypeInvalidParams = "InvalidPKIParams"
	// ErrTypeUnusableKey is the application error type of a stored authority or signing key
	// that is broken: replacing it would break trust in the running cluster, so a human decides.
	ErrTypeUnusableKey = "UnusablePKIKey"
)

// Namespace is the meta-cluster namespace that holds a business cluster's Secrets by default.
func Namespace(cluster string) string { return "kok-cluster-" + cluster }

// SecretName is the Secret of one part of a cluster's PKI: an authority or certificate name of
// kok.dev/internal/pki, ServiceAccountKey, or KubeconfigPart(user).
func SecretName(cluster, part string) string { return cluster + "-" + part }

// KubeconfigPart names the kubeconfig Secret part of a user (clusterpki.Admin, ...).
func KubeconfigPart(user string) string { return user + "-kubeconfig" }

// kubeconfigUsers get a kubeconfig Secret each.
var kubeconfigUsers = []string{clusterpki.Admin, clusterpki.ControllerManager, clusterpki.Scheduler}

// Activities keep PKI Secrets in the meta cluster through Client.
type Activities struct {
	Client client.Client
}

// EnsureClusterPKIParams says which cluster's PKI to keep, and where.
type EnsureClusterPKIParams struct {
	// Cluster is the business cluster's name.
	Cluster string
	// Namespace holds the Secrets; empty means Namespace(Cluster). Created when missing.
	Namespace string
	// Request describes the certificates; an empty Request.ClusterName means Cluster.
	Request clusterpki.Request
	// Server is the https URL the kubeconfigs point at (the control-plane endpoint); the
	// apiserver certificate must cover its host.
	Server string
}

// EnsureClusterPKIResult names what the PKI is stored in. It holds no key material.
type EnsureClusterPKIResult struct {
	Namespace string
	// Secrets are every Secret of the PKI, sorted.
	Secrets []string
	// Written are the Secrets this call created or changed; Deleted those of masters that left.
	Written []string
	Deleted []string
	// CAFingerprint identifies the cluster CA (see clusterpki.Fingerprint).
	CAFingerprint string
}

// EnsureClusterPKI makes the cluster's PKI Secrets complete and current: it keeps every
// authority and certificate that is still good and writes only Secrets whose content changes,
// so a second run writes nothing. A Secret created beforehand under the right name (a CA of
// the user's own, say) is used as it is.
func (a *Activities) EnsureClusterPKI(ctx context.Context, p EnsureClusterPKIParams) (EnsureClusterPKIResult, error) {
	ns, req, err := p.normalize()
	if err != nil {
		return EnsureClusterPKIResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidParams, err)
	}
	var list corev1.SecretList
	if err := a.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return EnsureClusterPKIResult{}, fmt.Errorf("list Secrets in %s: %w", ns, err)
	}
	existing := map[string]*corev1.Secret{}
	for i := range list.Items {
		existing[list.Items[i].Name] = &list.Items[i]
	}

	bundle, _, err := clusterpki.Complete(readBundle(p.Cluster, existing), req)
	if err != nil {
		return EnsureClusterPKIResult{}, classify(fmt.Errorf("cluster %s: %w", p.Cluster, err))
	}
	// Everything is rendered before anything is written: bad input creates nothing.
	desired, err := renderSecrets(p.Cluster, ns, bundle, p.Server)
	if err != nil {
		return EnsureClusterPKIResult{}, classify(fmt.Errorf("cluster %s: %w", p.Cluster, err))
	}
	fingerprint, err := clusterpki.Fingerprint(bundle.CA.CertPEM)
	if err != nil {
		return EnsureClusterPKIResult{}, fmt.Errorf("cluster %s: %w", p.Cluster, err)
	}

	if err := a.ensureNamespace(ctx, ns, p.Cluster); err != nil {
		return EnsureClusterPKIResult{}, err
	}

	res := EnsureClusterPKIResult{Namespace: ns, CAFingerprint: fingerprint}
	wanted := map[string]bool{}
	// Authorities come first in desired: a crash after them leaves leaves that no longer
	// verify, which the next run reissues; never a leaf whose authority was not stored.
	for _, s := range desired {
		wanted[s.Name] = true
		res.Secrets = append(res.Secrets, s.Name)
		written, err := a.write(ctx, existing[s.Name], s)
		if err != nil {
			return EnsureClusterPKIResult{}, err
		}
		if written {
			res.Written = append(res.Written, s.Name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(existing)) {
		s := existing[name]
		if wanted[name] || !isPKISecret(s, p.Cluster) {
			continue
		}
		if err := a.delete(ctx, s); err != nil {
			return EnsureClusterPKIResult{}, err
		}
		res.Deleted = append(res.Deleted, name)
	}
	slices.Sort(res.Secrets)
	slices.Sort(res.Written)
	return res, nil
}

// DeleteClusterPKIParams names the cluster whose PKI Secrets go.
type DeleteClusterPKIParams struct {
	Cluster string
	// Namespace holds the Secrets; empty means Namespace(Cluster).
	Namespace string
}

// DeleteClusterPKIResult names the Secrets this call deleted.
type DeleteClusterPKIResult struct {
	Deleted []string
}

// DeleteClusterPKI deletes every PKI Secret of the cluster; it leaves the namespace, which
// other parts of the cluster share. Running it again deletes nothing and succeeds.
func (a *Activities) DeleteClusterPKI(ctx context.Context, p DeleteClusterPKIParams) (DeleteClusterPKIResult, error) {
	ns, err := namespaceOf(p.Cluster, p.Namespace)
	if err != nil {
		return DeleteClusterPKIResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidParams, err)
	}
	var list corev1.SecretList
	if err := a.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{LabelCluster: p.Cluster}, client.HasLabels{LabelPKI}); err != nil {
		return DeleteClusterPKIResult{}, fmt.Errorf("list PKI Secrets of %s in %s: %w", p.Cluster, ns, err)
	}
	var res DeleteClusterPKIResult
	for i := range list.Items {
		if err := a.delete(ctx, &list.Items[i]); err != nil {
			return DeleteClusterPKIResult{}, err
		}
		res.Deleted = append(res.Deleted, list.Items[i].Name)
	}
	slices.Sort(res.Deleted)
	return res, nil
}

func (p EnsureClusterPKIParams) normalize() (string, clusterpki.Request, error) {
	ns, err := namespaceOf(p.Cluster, p.Namespace)
	if err != nil {
		return "", clusterpki.Request{}, err
	}
	req := p.Request
	switch req.ClusterName {
	case "":
		req.ClusterName = p.Cluster
	case p.Cluster:
	default:
		return "", clusterpki.Request{}, fmt.Errorf("request is for cluster %q, not %q", req.ClusterName, p.Cluster)
	}
	return ns, req, nil
}

func namespaceOf(cluster, ns string) (string, error) {
	if cluster == "" {
		return "", errors.New("cluster name is empty")
	}
	// The cluster name becomes part of Secret names and label values.
	if errs := validation.IsDNS1123Subdomain(SecretName(cluster, clusterpki.APIServerKubeletClient)); len(errs) > 0 {
		return "", fmt.Errorf("cluster name %q cannot name Secrets: %v", cluster, errs)
	}
	if errs := validation.IsValidLabelValue(cluster); len(errs) > 0 {
		return "", fmt.Errorf("cluster name %q cannot be a label value: %v", cluster, errs)
	}
	if ns == "" {
		ns = Namespace(cluster)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", fmt.Errorf("namespace %q is not a valid name: %v", ns, errs)
	}
	return ns, nil
}

// classify makes errors that no retry can fix non-retryable, with a type the workflow can
// turn into a condition.
func classify(err error) error {
	switch {
	case errors.Is(err, clusterpki.ErrInvalidRequest):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidParams, err)
	case errors.Is(err, clusterpki.ErrUnusableKey):
		return temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeUnusableKey, err)
	}
	return err
}

func (a *Activities) ensureNamespace(ctx context.Context, ns, cluster string) error {
	var got corev1.Namespace
	err := a.Client.Get(ctx, types.NamespacedName{Name: ns}, &got)
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("get namespace %s: %w", ns, err)
	}
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{LabelCluster: cluster}}}
	if err := a.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	return nil
}

// readBundle gathers what the Secrets hold, whatever their labels. Missing or malformed data
// is left empty for Complete to judge.
func readBundle(cluster string, secrets map[string]*corev1.Secret) *clusterpki.Bundle {
	data := func(part, key string) []byte {
		if s, ok := secrets[SecretName(cluster, part)]; ok {
			return s.Data[key]
		}
		return nil
	}
	pair := func(part string) clusterpki.KeyPair {
		return clusterpki.KeyPair{CertPEM: data(part, corev1.TLSCertKey), KeyPEM: data(part, corev1.TLSPrivateKeyKey)}
	}
	b := &clusterpki.Bundle{
		ClusterName:  cluster,
		CA:           pair(clusterpki.CA),
		EtcdCA:       pair(clusterpki.EtcdCA),
		FrontProxyCA: pair(clusterpki.FrontProxyCA),
		ServiceAccount: clusterpki.ServiceAccountKey{
			PrivateKeyPEM: data(ServiceAccountKey, KeyServiceAccountPrivate),
			PublicKeyPEM:  data(ServiceAccountKey, KeyServiceAccountPublic),
		},
		Leaves: map[string]clusterpki.KeyPair{},
	}
	for name, s := range secrets {
		leaf, ok := strings.CutPrefix(name, cluster+"-")
		if ok && s.Labels[LabelPKI] == PKICertificate && s.Labels[LabelCluster] == cluster {
			b.Leaves[leaf] = pair(leaf)
		}
	}
	return b
}

// renderSecrets returns the Secrets that hold b, authorities first.
func renderSecrets(cluster, ns string, b *clusterpki.Bundle, server string) ([]*corev1.Secret, error) {
	secret := func(part, kind string, typ corev1.SecretType, data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: SecretName(cluster, part), Namespace: ns,
				Labels: map[string]string{LabelCluster: cluster, LabelPKI: kind},
			},
			Type: typ,
			Data: data,
		}
	}
	tls := func(p clusterpki.KeyPair) map[string][]byte {
		return map[string][]byte{corev1.TLSCertKey: p.CertPEM, corev1.TLSPrivateKeyKey: p.KeyPEM}
	}
	out := []*corev1.Secret{
		secret(clusterpki.CA, PKIAuthority, corev1.SecretTypeTLS, tls(b.CA)),
		secret(clusterpki.EtcdCA, PKIAuthority, corev1.SecretTypeTLS, tls(b.EtcdCA)),
		secret(clusterpki.FrontProxyCA, PKIAuthority, corev1.SecretTypeTLS, tls(b.FrontProxyCA)),
		secret(ServiceAccountKey, PKIServiceAccountKey, corev1.SecretTypeOpaque, map[string][]byte{
			KeyServiceAccountPrivate: b.ServiceAccount.PrivateKeyPEM,
			KeyServiceAccountPublic:  b.ServiceAccount.PublicKeyPEM,
		}),
	}
	for _, name := range slices.Sorted(maps.Keys(b.Leaves)) {
		issuer, err := b.IssuerCert(name)
		if err != nil {
			return nil, err
		}
		data := tls(b.Leaves[name])
		data[KeyCACert] = issuer
		out = append(out, secret(name, PKICertificate, corev1.SecretTypeTLS, data))
	}
	for _, user := range kubeconfigUsers {
		kubeconfig, err := b.Kubeconfig(user, server)
		if err != nil {
			return nil, err
		}
		out = append(out, secret(KubeconfigPart(user), PKIKubeconfig, corev1.SecretTypeOpaque, map[string][]byte{KeyKubeconfig: kubeconfig}))
	}
	return out, nil
}

// write makes the stored Secret (nil: none) hold want, and says whether it had to. Updates
// carry the resourceVersion that was read, so a concurrent writer makes this call fail and
// retry rather than overwrite an authority.
func (a *Activities) write(ctx context.Context, have, want *corev1.Secret) (bool, error) {
	if have != nil && have.Type == want.Type && sameData(have.Data, want.Data) && hasLabels(have, want.Labels) {
		return false, nil
	}
	if have != nil && have.Type != want.Type {
		// A Secret's type is immutable: replace it.
		if err := a.delete(ctx, have); err != nil {
			return false, err
		}
		have = nil
	}
	if have == nil {
		if err := a.Client.Create(ctx, want); err != nil {
			return false, fmt.Errorf("create Secret %s/%s: %w", want.Namespace, want.Name, err)
		}
		return true, nil
	}
	updated := have.DeepCopy()
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	maps.Copy(updated.Labels, want.Labels)
	updated.Data = want.Data
	updated.StringData = nil
	if err := a.Client.Update(ctx, updated); err != nil {
		return false, fmt.Errorf("update Secret %s/%s: %w", want.Namespace, want.Name, err)
	}
	return true, nil
}

func (a *Activities) delete(ctx context.Context, s *corev1.Secret) error {
	// The UID precondition keeps a retry from deleting a Secret that was recreated meanwhile.
	err := a.Client.Delete(ctx, s, client.Preconditions{UID: &s.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

func isPKISecret(s *corev1.Secret, cluster string) bool {
	_, ok := s.Labels[LabelPKI]
	return ok && s.Labels[LabelCluster] == cluster
}

func sameData(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}

func hasLabels(s *corev1.Secret, labels map[string]string) bool {
	for k, v := range labels {
		if s.Labels[k] != v {
			return false
		}
	}
	return true
}

// LoadBundle reads the cluster's PKI back from its Secrets in ns (empty: Namespace(cluster)),
// for activities that hand key material to the cluster's hosts. It fails when the CA is
// missing: EnsureClusterPKI has not run yet.
func LoadBundle(ctx context.Context, c client.Reader, cluster, ns string) (*clusterpki.Bundle, error) {
	ns, err := namespaceOf(cluster, ns)
	if err != nil {
		return nil, err
	}
	var list corev1.SecretList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{LabelCluster: cluster}); err != nil {
		return nil, fmt.Errorf("list PKI Secrets of %s in %s: %w", cluster, ns, err)
	}
	secrets := map[string]*corev1.Secret{}
	for i := range list.Items {
		secrets[list.Items[i].Name] = &list.Items[i]
	}
	b := readBundle(cluster, secrets)
	if len(b.CA.CertPEM) == 0 || len(b.CA.KeyPEM) == 0 {
		return nil, fmt.Errorf("cluster %s has no CA in namespace %s yet", cluster, ns)
	}
	return b, nil
}

// AdminKubeconfig returns the admin kubeconfig Secret's content.
func AdminKubeconfig(ctx context.Context, c client.Reader, cluster, ns string) ([]byte, error) {
	ns, err := namespaceOf(cluster, ns)
	if err != nil {
		return nil, err
	}
	var s corev1.Secret
	key := client.ObjectKey{Namespace: ns, Name: SecretName(cluster, KubeconfigPart(clusterpki.Admin))}
	if err := c.Get(ctx, key, &s); err != nil {
		return nil, fmt.Errorf("admin kubeconfig of %s: %w", cluster, err)
	}
	if len(s.Data[KeyKubeconfig]) == 0 {
		return nil, fmt.Errorf("admin kubeconfig Secret %s/%s has no %q", ns, s.Name, KeyKubeconfig)
	}
	return s.Data[KeyKubeconfig], nil
}
