package cluster

import (
	"errors"
	"fmt"
	"strings"

	"kok.dev/contract/hostapi"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"kok.dev/activities/controlplane"
	pkiacts "kok.dev/activities/pki"
	"kok.dev/activities/provider/process"
	kokv1 "kok.dev/api/v1alpha1"
	clusterpki "kok.dev/internal/pki"
)

// OpParams start an operation's child workflow: the entity's state and the Cluster as read.
type OpParams struct {
	Cluster     string
	MetaCluster string
	State       State
	View        controlplane.ClusterView
	// Type is Upgrade or Rollback for the upgrade workflow; Hosts the masters to heal.
	Type  Operation
	Hosts []string
}

// OpResult is the state after the operation, and what it came to.
type OpResult struct {
	State State
	// RolledBack says why an upgrade was undone ("" when it was not).
	RolledBack string
	// Superseded: the Cluster was deleted meanwhile; the operation stopped at a step boundary.
	Superseded bool
	// NotStarted says why an upgrade did not begin (unhealthy masters); nothing changed.
	NotStarted string
	// Outcome is what a heal came to, Why in words (the failures, for status).
	Outcome Outcome `json:",omitempty"`
	Why     string  `json:",omitempty"`
}

// Outcome is what an operation came to, for the entity to act on.
type Outcome string

const (
	// OutcomeRepaired: kok had to act (a component installed, upgraded or repaired) and the
	// masters are healthy again. Counts against the recovery budget.
	OutcomeRepaired Outcome = "Repaired"
	// OutcomeRecoveredByItself: nothing needed repairing and the masters passed their checks:
	// they came back on their own (the agent restarts services on boot). Counts nothing.
	OutcomeRecoveredByItself Outcome = "RecoveredByItself"
	// OutcomeFailed: some master is still unhealthy after the operation; Why says which and why.
	// Counts against the recovery budget.
	OutcomeFailed Outcome = "Failed"
)

// Counts says whether the outcome spends one automatic recovery of the budget.
func (o Outcome) Counts() bool { return o == OutcomeRepaired || o == OutcomeFailed }

var pkiActs *pkiacts.Activities

// CreateWorkflow brings a new control plane up: PKI, etcd on every master at once, the API
// servers, controller-managers and schedulers, then kok's CRDs and the machine operator.
// Every step is idempotent (the agent compares before it acts), so a step that is repeated
// after a crash of the manager changes nothing the second time.
func CreateWorkflow(ctx workflow.Context, p OpParams) (OpResult, error) {
	s := p.State
	o := &op{cluster: p.Cluster, meta: p.MetaCluster, s: &s, view: p.View, reconcile: workflow.GetSignalChannel(ctx, SignalReconcile)}
	target := *p.View.Target
	started := workflow.Now(ctx)
	step := func(name, format string, args ...any) error {
		if stop, err := o.checkpoint(ctx); err != nil || stop {
			if err == nil {
				err = errSuperseded
			}
			return err
		}
		return o.report(ctx, kokv1.ClusterCreating, &controlplane.OperationReport{
			Type: string(kokv1.ClusterOperationCreate), Step: name, Message: fmt.Sprintf(format, args...), StartedAt: started,
		}, condition(kokv1.ConditionProgressing, true, kokv1.ReasonCreating, "%s: %s", name, fmt.Sprintf(format, args...)),
			condition(kokv1.ConditionReady, false, kokv1.ReasonCreating, "the control plane is being created"))
	}
	endpoint := Endpoint(p.View.ControlPlaneEndpoint, s.Masters, s.Ports.APIServer)
	s.Report.Target, s.Report.Endpoint = target.Name, endpoint
	s.Running = map[string]map[string]string{}
	for _, m := range s.Masters {
		s.Running[m.Host] = releaseAll(target)
	}

	// 1. PKI: authorities, serving and client certificates, kubeconfigs, in meta-cluster
	// Secrets. The activity returns names and a fingerprint only: no key enters history here.
	if err := step("pki", "certificates for %d master(s), endpoint %s", len(s.Masters), endpoint); err != nil {
		return o.result(err)
	}
	serviceIP, err := clusterpki.ServiceIP(p.View.ServiceCIDR)
	if err != nil {
		return OpResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("service CIDR: %v", err), hostapi.ErrTypeBadSpec, err)
	}
	req := clusterpki.Request{ClusterName: p.Cluster, ServiceIP: serviceIP}
	for _, m := range s.Masters {
		req.Masters = append(req.Masters, clusterpki.Master{Name: m.Host, IP: m.IP})
	}
	if e := p.View.ControlPlaneEndpoint; e != "" {
		req.ExtraSANs = append(req.ExtraSANs, strings.Split(e, ":")[0])
	}
	if err := workflow.ExecuteActivity(o.metaCtx(ctx), pkiActs.EnsureClusterPKI, pkiacts.EnsureClusterPKIParams{
		Cluster: p.Cluster, Request: req, Server: endpoint,
	}).Get(ctx, nil); err != nil {
		return o.result(err)
	}
	s.Report.HasKubeconfig = true

	specs := map[string]map[string]hostapi.PackageSpec{}
	for _, m := range s.Masters {
		sp, err := o.render(ctx, m.Host)
		if err != nil {
			return o.result(err)
		}
		specs[m.Host] = sp
	}
	// 2-4. Components in start order; each on every master at once.
	for _, comp := range []string{Etcd, KubeAPIServer, KubeControllerManager, KubeScheduler} {
		if err := step(comp, "%s %s on %s", comp, target.Components[comp], hostList(s.Masters)); err != nil {
			return o.result(err)
		}
		if err := o.ensureOnAll(ctx, comp, specs); err != nil {
			return o.result(err)
		}
		if comp == KubeAPIServer {
			if err := o.waitReady(ctx, s.Masters, target.KubernetesVersion, p.View.HealthTimeout); err != nil {
				return o.result(err)
			}
		}
	}
	// 5. kok inside the new cluster: CRDs and kok-system, then the machine operator.
	if err := step("addons", "kok CRDs and namespace %s", kokv1.ConditionNamespace); err != nil {
		return o.result(err)
	}
	if err := workflow.ExecuteActivity(o.metaCtx(ctx), cpActs.InstallAddons, controlplane.InstallAddonsParams{Cluster: p.Cluster}).Get(ctx, nil); err != nil {
		return o.result(err)
	}
	if _, ok := target.Components[MachineOperator]; ok {
		if err := step(MachineOperator, "machine operator %s on %s", target.Components[MachineOperator], hostList(s.Masters)); err != nil {
			return o.result(err)
		}
		if err := o.ensureOnAll(ctx, MachineOperator, specs); err != nil {
			return o.result(err)
		}
	}
	// 6. Healthy everywhere: the cluster is created.
	if err := o.waitReady(ctx, s.Masters, target.KubernetesVersion, p.View.HealthTimeout); err != nil {
		return o.result(err)
	}
	s.Created = true
	s.Report.Current, s.Report.Target = target.Name, ""
	return OpResult{State: s}, nil
}

// result turns a step's error into the operation's outcome: a deletion that overtook the
// operation is not a failure.
func (o *op) result(err error) (OpResult, error) {
	if errors.Is(err, errSuperseded) {
		return OpResult{State: *o.s, Superseded: true}, nil
	}
	return OpResult{State: *o.s}, err
}

func hostList(ms []process.Master) string {
	var hs []string
	for _, m := range ms {
		hs = append(hs, m.Host)
	}
	return strings.Join(hs, ", ")
}
