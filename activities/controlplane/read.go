package controlplane

import (
	"context"
	"fmt"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kokv1 "kok.dev/api/v1alpha1"
)

// Release is one ClusterPackageVersion as the workflow needs it: names and versions only.
type Release struct {
	// Name is the ClusterPackageVersion's name.
	Name              string
	KubernetesVersion string
	// Components maps each component to its version.
	Components map[string]string
}

// ClusterView is a Cluster as the Cluster workflow decides on it: the spec with its defaults
// applied and its package versions resolved, plus the status fields that record what the
// cluster runs (so that a new workflow run picks up where the last one stood).
type ClusterView struct {
	Found      bool
	Generation int64
	Deleting   bool
	// Orphan: deletionPolicy Orphan, the control plane is left running.
	Orphan   bool
	Paused   bool
	Provider string

	// Target is spec.packageVersion resolved; nil with TargetUnresolved saying why.
	Target           *Release
	TargetName       string
	TargetUnresolved string
	// Current is status.currentPackageVersion resolved (nil before the first create).
	Current  *Release
	Previous string

	MasterCount          int
	MasterHosts          []string
	APIServerPort        int
	ControlPlaneEndpoint string
	ServiceCIDR, PodCIDR string

	AutoRollback      bool
	HealthTimeout     time.Duration
	CheckInterval     time.Duration
	MaxAutoRecoveries int
	RecoveryWindow    time.Duration

	// Resolve is the value of the annotation kok.dev/resolve: a new value is a person saying a
	// cluster waiting for a human may go on (once per value).
	Resolve string `json:",omitempty"`
}

// ReadClusterParams names the Cluster to read.
type ReadClusterParams struct{ Name string }

// ReadCluster reads a Cluster and resolves its package versions. A Cluster that is gone reads
// as Found false, not as an error.
func (a *Activities) ReadCluster(ctx context.Context, p ReadClusterParams) (ClusterView, error) {
	var c kokv1.Cluster
	if err := a.Client.Get(ctx, types.NamespacedName{Name: p.Name}, &c); err != nil {
		if apierrors.IsNotFound(err) {
			return ClusterView{}, nil
		}
		return ClusterView{}, fmt.Errorf("get cluster %s: %w", p.Name, err)
	}
	s := c.Spec
	v := ClusterView{
		Found:                true,
		Generation:           c.Generation,
		Deleting:             c.DeletionTimestamp != nil,
		Orphan:               s.DeletionPolicy == kokv1.DeletionPolicyOrphan,
		Paused:               s.Paused,
		Provider:             string(s.Provider),
		TargetName:           s.PackageVersion,
		Previous:             c.Status.PreviousPackageVersion,
		MasterCount:          int(s.Masters.Count),
		MasterHosts:          append([]string(nil), s.Masters.Hosts...),
		APIServerPort:        int(s.Network.APIServerPort),
		ControlPlaneEndpoint: s.Network.ControlPlaneEndpoint,
		ServiceCIDR:          s.Network.ServiceCIDR,
		PodCIDR:              s.Network.PodCIDR,
		AutoRollback:         s.Upgrade.AutoRollback == nil || *s.Upgrade.AutoRollback,
		HealthTimeout:        durationOr(s.Upgrade.HealthTimeout, 5*time.Minute),
		CheckInterval:        durationOr(s.Health.CheckInterval, 30*time.Second),
		MaxAutoRecoveries:    3,
		RecoveryWindow:       durationOr(s.Health.Window, time.Hour),
		Resolve:              c.Annotations[kokv1.AnnotationResolve],
	}
	// Defaults the API server applies, repeated for objects written before a default existed.
	if v.Provider == "" {
		v.Provider = string(kokv1.ProviderProcess)
	}
	if v.MasterCount == 0 {
		v.MasterCount = 1
	}
	if v.APIServerPort == 0 {
		v.APIServerPort = 6443
	}
	if v.ServiceCIDR == "" {
		v.ServiceCIDR = "10.96.0.0/12"
	}
	if v.PodCIDR == "" {
		v.PodCIDR = "10.244.0.0/16"
	}
	if s.Health.MaxAutoRecoveries != nil {
		v.MaxAutoRecoveries = int(*s.Health.MaxAutoRecoveries)
	}
	sort.Strings(v.MasterHosts)

	rel, why, err := a.release(ctx, s.PackageVersion)
	if err != nil {
		return ClusterView{}, err
	}
	v.Target, v.TargetUnresolved = rel, why
	if cur := c.Status.CurrentPackageVersion; cur != "" {
		rel, why, err := a.release(ctx, cur)
		if err != nil {
			return ClusterView{}, err
		}
		if rel == nil {
			// The running release's catalogue entry was deleted: the names still tell the
			// workflow what runs, and an upgrade away from it needs no more than that.
			rel = &Release{Name: cur}
			_ = why
		}
		v.Current = rel
	}
	return v, nil
}

// release resolves a ClusterPackageVersion; a missing one is a reason, not an error.
func (a *Activities) release(ctx context.Context, name string) (*Release, string, error) {
	var cpv kokv1.ClusterPackageVersion
	if err := a.Client.Get(ctx, client.ObjectKey{Name: name}, &cpv); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Sprintf("ClusterPackageVersion %q does not exist", name), nil
		}
		return nil, "", fmt.Errorf("get ClusterPackageVersion %s: %w", name, err)
	}
	if cpv.Status.Phase == kokv1.PackageVersionInvalid {
		return nil, fmt.Sprintf("ClusterPackageVersion %q is Invalid", name), nil
	}
	r := &Release{Name: name, KubernetesVersion: cpv.Spec.KubernetesVersion, Components: map[string]string{}}
	for _, comp := range cpv.Spec.Components {
		r.Components[string(comp.Name)] = comp.Version
	}
	return r, "", nil
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil || d.Duration <= 0 {
		return def
	}
	return d.Duration
}
