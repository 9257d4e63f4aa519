package controlplane

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"
	"k8s.io/apimachinery/pkg/types"

	pkiacts "kok.dev/activities/pki"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
)

// ErrTypeBadRelease is the application error type of a release or spec that cannot be
// rendered (a component missing from the package version, a protected flag overridden):
// retrying cannot fix it; an edit can.
const ErrTypeBadRelease = "BadRelease"

// RenderMasterParams asks for one master's packages.
type RenderMasterParams struct {
	Cluster string
	// Masters are every master with its address; Host is the one to render.
	Masters []process.Master
	Host    string
	// Releases maps each component to the ClusterPackageVersion it is rendered from. One
	// release for every component is the usual case; an upgrade in flight, or etcd kept at a
	// newer version after a rollback, mixes two.
	Releases map[string]string
	Ports    process.Ports
}

// RenderMaster renders one master's packages (in start order) from the cluster's PKI, the
// releases named and the Cluster's overrides. The result holds key material: it travels only
// as payloads the codec encrypts, straight to the agent.
func (a *Activities) RenderMaster(ctx context.Context, p RenderMasterParams) ([]hostapi.PackageSpec, error) {
	var c kokv1.Cluster
	if err := a.Client.Get(ctx, types.NamespacedName{Name: p.Cluster}, &c); err != nil {
		return nil, fmt.Errorf("get cluster %s: %w", p.Cluster, err)
	}
	releases := map[string]process.Release{}
	cache := map[string]*kokv1.ClusterPackageVersion{}
	for comp, name := range p.Releases {
		cpv, ok := cache[name]
		if !ok {
			cpv = &kokv1.ClusterPackageVersion{}
			if err := a.Client.Get(ctx, types.NamespacedName{Name: name}, cpv); err != nil {
				return nil, fmt.Errorf("get ClusterPackageVersion %s: %w", name, err)
			}
			cache[name] = cpv
		}
		for _, cc := range cpv.Spec.Components {
			if string(cc.Name) != comp {
				continue
			}
			r := process.Release{Version: cc.Version, Args: cc.Args}
			if cc.Artifact != nil {
				r.ArtifactURL, r.SHA256 = cc.Artifact.URL, cc.Artifact.SHA256
			}
			releases[comp] = r
		}
	}
	overrides := map[string]map[string]string{}
	for _, cc := range c.Spec.Components {
		overrides[string(cc.Name)] = cc.Args
	}
	var this process.Master
	for _, m := range p.Masters {
		if m.Host == p.Host {
			this = m
		}
	}
	bundle, err := pkiacts.LoadBundle(ctx, a.Client, p.Cluster, "")
	if err != nil {
		return nil, err
	}
	url := "https://" + net.JoinHostPort(this.IP, strconv.Itoa(p.Ports.APIServer))
	files, err := process.FilesFor(bundle, p.Host, url)
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBadRelease, err)
	}
	var op *process.Operator
	if a.Operator.TemporalAddress != "" {
		o := a.Operator
		op = &o
	}
	specs, err := process.Render(process.Input{
		Cluster: p.Cluster, Masters: p.Masters, This: this, Ports: p.Ports,
		ServiceCIDR: c.Spec.Network.ServiceCIDR, PodCIDR: c.Spec.Network.PodCIDR,
		Release: releases, Overrides: overrides, Files: files, Operator: op,
	})
	if err != nil {
		return nil, temporal.NewNonRetryableApplicationError(fmt.Sprintf("cluster %s: %v", p.Cluster, err), ErrTypeBadRelease, err)
	}
	return specs, nil
}
