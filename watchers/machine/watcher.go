package machine

import (
	"context"
	"fmt"
	"sync"

	sdkclient "go.temporal.io/sdk/client"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kokv1 "kok.dev/api/v1alpha1"
	"kok.dev/watchers/entity"
	machinewf "kok.dev/workflows/machine"
)

// packageIndex indexes Machines by the MachinePackageVersion names they reference.
const packageIndex = "kok.dev/packageVersions"

// DefaultMaxConcurrentReconciles: one SignalWithStart takes 5–20 ms, so 8 reconcilers signal
// 400–1,600 Machines a second, enough for a 10,000-node cluster's bursts.
const DefaultMaxConcurrentReconciles = 8

// Reconciler turns changes of what a Machine's workflow reads into workflow signals.
type Reconciler struct {
	Client   client.Client
	Temporal sdkclient.Client
	// Cluster is the name of the business cluster this watcher serves (part of workflow IDs).
	Cluster string
	// WebUI is the Temporal Web UI's base URL, for links in status; empty leaves links out.
	WebUI     string
	Namespace string
	// MaxConcurrentReconciles is how many Machines are reconciled at once;
	// DefaultMaxConcurrentReconciles when 0.
	MaxConcurrentReconciles int

	// cache reads everything from the manager's informers (Nodes as metadata only).
	cache client.Reader
	// sent is the last digest this process signalled per Machine name.
	sent sync.Map
}

// SetupWithManager registers the watcher and what wakes it.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.cache = mgr.GetCache()
	byPackageVersion, err := entity.ReferenceIndex(context.Background(), mgr, &kokv1.Machine{}, &kokv1.MachineList{}, packageIndex, func(o client.Object) []string {
		m := o.(*kokv1.Machine)
		out := make([]string, 0, len(m.Spec.Packages))
		for _, p := range m.Spec.Packages {
			out = append(out, p.Name+"-"+p.Version)
		}
		return out
	})
	if err != nil {
		return err
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = DefaultMaxConcurrentReconciles
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("machine").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		For(&kokv1.Machine{}, builder.WithPredicates(entity.EntityChanged(kokv1.AnnotationRetry))).
		Watches(&corev1.ConfigMap{}, conditionMapHandler(), builder.WithPredicates(ConditionMapChanged())).
		// Nodes change status every few seconds; only registration and removal matter here (the
		// workflow waits for the kubelet to register the Node before it can make it
		// schedulable), and metadata is all it takes to see them.
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(sameName), builder.OnlyMetadata, builder.WithPredicates(entity.Lifecycle())).
		Watches(&kokv1.MachinePackageVersion{}, handler.EnqueueRequestsFromMapFunc(byPackageVersion), builder.WithPredicates(packageVersionChanged())).
		Complete(r)
}

// ConditionMapChanged lets through the Condition ConfigMap events that can change what a Machine
// workflow reads: creation and deletion, and updates of Data or of the node label (which moves
// the ConfigMap to another Machine: both are woken). Updates that only touch other labels,
// annotations or managed fields, and resyncs, are dropped.
func ConditionMapChanged() predicate.Predicate {
	isCondition := func(o client.Object) bool {
		return o.GetNamespace() == kokv1.ConditionNamespace && o.GetLabels()[kokv1.LabelNode] != ""
	}
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return isCondition(e.Object) },
		DeleteFunc:  func(e event.DeleteEvent) bool { return isCondition(e.Object) },
		GenericFunc: func(event.GenericEvent) bool { return false },
		UpdateFunc: func(e event.UpdateEvent) bool {
			if !isCondition(e.ObjectOld) && !isCondition(e.ObjectNew) {
				return false
			}
			return ConditionMapUpdateMatters(e.ObjectOld, e.ObjectNew)
		},
	}
}

// ConditionMapUpdateMatters is ConditionMapChanged's decision for one update.
func ConditionMapUpdateMatters(old, new client.Object) bool {
	if old.GetLabels()[kokv1.LabelNode] != new.GetLabels()[kokv1.LabelNode] {
		return true
	}
	oc, ok1 := old.(*corev1.ConfigMap)
	nc, ok2 := new.(*corev1.ConfigMap)
	if !ok1 || !ok2 {
		return true
	}
	if len(oc.Data) != len(nc.Data) {
		return true
	}
	for k, v := range oc.Data {
		if w, ok := nc.Data[k]; !ok || w != v {
			return true
		}
	}
	return false
}

// packageVersionChanged wakes the Machines naming a package version when it appears, goes, or
// its spec or phase changes: not on other status writes.
func packageVersionChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*kokv1.MachinePackageVersion)
		n, ok2 := e.ObjectNew.(*kokv1.MachinePackageVersion)
		return !ok1 || !ok2 || o.Generation != n.Generation || o.Status.Phase != n.Status.Phase || o.UID != n.UID
	}}
}

// conditionMapHandler wakes the Machine a Condition ConfigMap reports on; when an update moves it
// to another node (its kok.dev/node label changed), both Machines.
func conditionMapHandler() handler.EventHandler {
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		for _, o := range objs {
			if o == nil {
				continue
			}
			if node := o.GetLabels()[kokv1.LabelNode]; node != "" {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: node}})
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
	}
}

func sameName(_ context.Context, o client.Object) []reconcile.Request {
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetName()}}}
}

// Reconcile ensures the finalizer and, when the inputs of the Machine's workflow differ from those
// it has acted on, signals it (starting it if needed) with their digest and records the workflow
// in status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var m kokv1.Machine
	if err := r.cache.Get(ctx, req.NamespacedName, &m); err != nil {
		if apierrors.IsNotFound(err) {
			r.sent.Delete(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if skip, err := entity.EnsureFinalizer(ctx, r.Client, &m, kokv1.MachineFinalizer); err != nil || skip {
		return ctrl.Result{}, err
	}
	in, err := r.inputs(ctx, &m)
	if err != nil {
		return ctrl.Result{}, err
	}
	digest := Digest(in)
	last, _ := r.sent.Load(m.Name)
	lastSent, _ := last.(string)
	if !MustSignal(digest, m.Status.ObservedInputs, lastSent) {
		return ctrl.Result{}, nil
	}
	ref, err := entity.Signal(ctx, r.Temporal, entity.Workflow{
		ID: machinewf.WorkflowID(r.Cluster, m.Name), Type: machinewf.WorkflowName, Signal: machinewf.SignalReconcile,
		SignalArg: machinewf.ReconcileSignal{Inputs: digest},
		Params:    machinewf.Params{Cluster: r.Cluster, Machine: m.Name},
		Cluster:   r.Cluster,
	}, r.WebUI, r.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	r.sent.Store(m.Name, digest)
	return ctrl.Result{}, entity.RecordWorkflow(ctx, r.Client, &m, &m.Status.Workflow, ref)
}

// inputs gathers what the Machine's workflow reads, from the cache.
func (r *Reconciler) inputs(ctx context.Context, m *kokv1.Machine) (Inputs, error) {
	in := Inputs{Machine: m, PackageVersions: map[string]*kokv1.MachinePackageVersion{}}
	for _, ref := range m.Spec.Packages {
		name := ref.Name + "-" + ref.Version
		var v kokv1.MachinePackageVersion
		switch err := r.cache.Get(ctx, types.NamespacedName{Name: name}, &v); {
		case err == nil:
			in.PackageVersions[name] = &v
		case !apierrors.IsNotFound(err):
			return in, fmt.Errorf("get MachinePackageVersion %s: %w", name, err)
		}
	}
	var cms corev1.ConfigMapList
	if err := r.cache.List(ctx, &cms, client.InNamespace(kokv1.ConditionNamespace), client.MatchingLabels{kokv1.LabelNode: m.Name}); err != nil {
		return in, fmt.Errorf("list condition ConfigMaps of %s: %w", m.Name, err)
	}
	in.ConditionMaps = cms.Items
	node := &metav1.PartialObjectMetadata{}
	node.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	switch err := r.cache.Get(ctx, types.NamespacedName{Name: m.Name}, node); {
	case err == nil:
		in.NodeExists = true
	case !apierrors.IsNotFound(err):
		return in, fmt.Errorf("get node %s: %w", m.Name, err)
	}
	return in, nil
}
