package kubelet

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
)

// Labels and annotations a simulated node carries.
const (
	// LabelSimulated marks nodes of simulated hosts.
	LabelSimulated = "kok.dev/simulated"
	// AnnotationKwokNode is what kwok's --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
	// selects: kwok then plays the container runtime for the node's pods (see deploy/kwok).
	AnnotationKwokNode = "kwok.x-k8s.io/node"
	// KwokNodeValue is the annotation's value.
	KwokNodeValue = "fake"
)

// Options configure a simulated kubelet; zero values take a real kubelet's defaults.
type Options struct {
	// Version is reported as the node's kubelet version, such as v1.37.2.
	Version string
	// LeaseDuration is the Lease's duration; it is renewed every quarter of it. Default 40s.
	LeaseDuration time.Duration
	// StatusInterval is how often the kubelet compares the Node's status with what it would
	// report (the kubelet's nodeStatusUpdateFrequency). Default 10s.
	StatusInterval time.Duration
	// StatusReportInterval is how long an unchanged status goes unwritten (the kubelet's
	// nodeStatusReportFrequency). Default 5m.
	StatusReportInterval time.Duration
	// Capacity is what the node offers (cpu, memory, pods); default 8 CPUs, 32Gi, 110 pods.
	Capacity corev1.ResourceList
	// RegisterSchedulable registers a new Node schedulable. Off by default: under kok a node
	// is born cordoned and only its Machine workflow uncordons it, once every readiness gate
	// passes (the real kubelet's --register-schedulable=false).
	RegisterSchedulable bool
	Logger              *slog.Logger
	// Clock drives the intervals; default the real one (tests pass a fake one).
	Clock clock.WithTicker
}

// Kubelet keeps one Node alive. It costs one goroutine and two tickers while it runs, and
// holds its Lease and the status it last reported; many can share one client.
type Kubelet struct {
	name   string
	o      Options
	nodes  coreclient.NodeInterface
	leases coordinationclient.LeaseInterface

	// Run's own state: the Lease as the API server last returned it, the Node's UID, and when
	// the status was last written.
	lease      *coordinationv1.Lease
	nodeUID    types.UID
	lastReport time.Time

	mu        sync.Mutex
	lastRenew time.Time
	lastErr   error
}

// New returns a kubelet for the node nodeName that talks to the API server through client.
// A fleet of simulated nodes shares one client; a kubelet's own requests are the real
// kubelet's: a Lease update every LeaseDuration/4 (no read, but after a conflict), a read of
// its Node from the API server's cache every StatusInterval, and a status write only when the
// status changed or StatusReportInterval has passed.
func New(client kubernetes.Interface, nodeName string, o Options) *Kubelet {
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 40 * time.Second
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 10 * time.Second
	}
	if o.StatusReportInterval <= 0 {
		o.StatusReportInterval = 5 * time.Minute
	}
	if o.Version == "" {
		o.Version = "v0.0.0-kok-sim"
	}
	if o.Capacity == nil {
		o.Capacity = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("8"),
			corev1.ResourceMemory: resource.MustParse("32Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return &Kubelet{
		name: nodeName, o: o,
		nodes:  client.CoreV1().Nodes(),
		leases: client.CoordinationV1().Leases(corev1.NamespaceNodeLease),
	}
}

// Healthy is nil while the Lease was renewed within its duration.
func (k *Kubelet) Healthy() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	since := k.o.Clock.Since(k.lastRenew)
	switch {
	case k.lastRenew.IsZero() && k.lastErr != nil:
		return fmt.Errorf("node %s not registered yet: %w", k.name, k.lastErr)
	case k.lastRenew.IsZero():
		return fmt.Errorf("node %s not registered yet", k.name)
	case since > k.o.LeaseDuration && k.lastErr != nil:
		return fmt.Errorf("lease of node %s not renewed since %s: %w", k.name, k.lastRenew.Format(time.RFC3339), k.lastErr)
	case since > k.o.LeaseDuration:
		return fmt.Errorf("lease of node %s not renewed since %s", k.name, k.lastRenew.Format(time.RFC3339))
	}
	return nil
}

// Run registers the node, then renews its lease and keeps its status until ctx ends. It
// returns an error only for a bad node name; the API server's errors are retried.
func (k *Kubelet) Run(ctx context.Context) error {
	if errs := validation.IsDNS1123Subdomain(k.name); len(errs) > 0 {
		return fmt.Errorf("node name %q: %s", k.name, strings.Join(errs, "; "))
	}
	// Registration is retried: the API server may not be there yet when the host boots.
	backoff := time.Second
	for {
		err := k.register(ctx)
		if err == nil {
			break
		}
		k.setErr(err)
		k.o.Logger.Warn("cannot register node; retrying", "node", k.name, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-k.o.Clock.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
	k.o.Logger.Info("node registered", "node", k.name, "version", k.o.Version)
	k.renew(ctx)
	k.syncStatus(ctx)

	leaseTick := k.o.Clock.NewTicker(k.o.LeaseDuration / 4)
	defer leaseTick.Stop()
	statusTick := k.o.Clock.NewTicker(k.o.StatusInterval)
	defer statusTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-leaseTick.C():
			k.renew(ctx)
		case <-statusTick.C():
			k.syncStatus(ctx)
		}
	}
}

func (k *Kubelet) setErr(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastErr = err
}

// register creates the Node, or adopts an existing one: its labels and annotations are
// completed, its spec (cordon, taints) is left to whoever owns it.
func (k *Kubelet) register(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.name, Labels: k.labels(), Annotations: k.annotations()},
		Spec:       corev1.NodeSpec{Unschedulable: !k.o.RegisterSchedulable},
	}
	created, err := k.nodes.Create(ctx, node, metav1.CreateOptions{})
	if err == nil {
		k.nodeUID = created.UID
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.nodes.Get(ctx, k.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		k.nodeUID = cur.UID
		changed := false
		if cur.Labels == nil {
			cur.Labels = map[string]string{}
		}
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		for key, v := range k.labels() {
			if cur.Labels[key] != v {
				cur.Labels[key], changed = v, true
			}
		}
		for key, v := range k.annotations() {
			if cur.Annotations[key] != v {
				cur.Annotations[key], changed = v, true
			}
		}
		if !changed {
			return nil
		}
		_, err = k.nodes.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
}

func (k *Kubelet) labels() map[string]string {
	return map[string]string{
		"kubernetes.io/hostname": k.name,
		"kubernetes.io/os":       runtime.GOOS,
		"kubernetes.io/arch":     runtime.GOARCH,
		LabelSimulated:           "true",
	}
}

func (k *Kubelet) annotations() map[string]string {
	return map[string]string{AnnotationKwokNode: KwokNodeValue}
}

// renew renews the node's Lease, creating it if need be.
func (k *Kubelet) renew(ctx context.Context) {
	err := k.renewOnce(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastErr = err
	if err == nil {
		k.lastRenew = k.o.Clock.Now()
	} else {
		k.o.Logger.Warn("cannot renew node lease", "node", k.name, "err", err)
	}
}

// renewOnce updates the Lease the kubelet holds in memory, as the kubelet's lease controller
// does: no read first. Only when it has none, or the update conflicts (someone else wrote the
// Lease), does it read the Lease once and try again.
func (k *Kubelet) renewOnce(ctx context.Context) error {
	if k.lease != nil {
		err := k.updateLease(ctx)
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
		k.lease = nil
	}
	lease, err := k.leases.Get(ctx, k.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return k.createLease(ctx)
	}
	if err != nil {
		return err
	}
	k.lease = lease
	return k.updateLease(ctx)
}

func (k *Kubelet) updateLease(ctx context.Context) error {
	next := k.lease.DeepCopy()
	k.fillLease(next)
	updated, err := k.leases.Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	k.lease = updated
	return nil
}

func (k *Kubelet) createLease(ctx context.Context) error {
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Name: k.name, Namespace: corev1.NamespaceNodeLease,
		// As a kubelet does: the lease goes when the node does.
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: k.name, UID: k.nodeUID}},
	}}
	k.fillLease(lease)
	created, err := k.leases.Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	k.lease = created
	return nil
}

func (k *Kubelet) fillLease(l *coordinationv1.Lease) {
	now := metav1.NewMicroTime(k.o.Clock.Now())
	seconds := int32(k.o.LeaseDuration / time.Second)
	holder := k.name
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &holder, &seconds, &now
}

// syncStatus does what the kubelet does every nodeStatusUpdateFrequency: it reads its Node
// from the API server's cache, and writes the status only when it differs from what the
// kubelet reports (someone marked the node NotReady, say) or StatusReportInterval has passed
// since the last write.
func (k *Kubelet) syncStatus(ctx context.Context) {
	if err := k.syncStatusOnce(ctx); err != nil {
		k.o.Logger.Warn("cannot post node status", "node", k.name, "err", err)
	}
}

func (k *Kubelet) syncStatusOnce(ctx context.Context) error {
	// The first read may be stale (the cache); after a conflict, the second is fresh.
	for _, rv := range []string{"0", ""} {
		node, err := k.nodes.Get(ctx, k.name, metav1.GetOptions{ResourceVersion: rv})
		if err != nil {
			return err
		}
		k.nodeUID = node.UID
		now := k.o.Clock.Now()
		next := node.DeepCopy()
		k.fillStatus(&next.Status, metav1.NewTime(now))
		if !k.lastReport.IsZero() && now.Sub(k.lastReport) < k.o.StatusReportInterval && !statusChanged(node.Status, next.Status) {
			return nil
		}
		_, err = k.nodes.UpdateStatus(ctx, next, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err == nil {
			k.lastReport = now
		}
		return err
	}
	return fmt.Errorf("node %s changed under two status writes in a row", k.name)
}

// statusChanged compares two statuses as the kubelet does: heartbeat times do not count.
func statusChanged(old, next corev1.NodeStatus) bool {
	strip := func(s corev1.NodeStatus) corev1.NodeStatus {
		s = *s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	return !equality.Semantic.DeepEqual(strip(old), strip(next))
}

// fillStatus sets what a kubelet reports, keeping transition times of unchanged conditions.
func (k *Kubelet) fillStatus(s *corev1.NodeStatus, now metav1.Time) {
	want := []corev1.NodeCondition{
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kok-sim-kubelet is posting ready status"},
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kok-sim-kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kok-sim-kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kok-sim-kubelet has sufficient PID available"},
	}
	for _, c := range want {
		c.LastHeartbeatTime, c.LastTransitionTime = now, now
		found := false
		for i := range s.Conditions {
			if s.Conditions[i].Type != c.Type {
				continue
			}
			found = true
			if s.Conditions[i].Status == c.Status {
				c.LastTransitionTime = s.Conditions[i].LastTransitionTime
			}
			s.Conditions[i] = c
		}
		if !found {
			s.Conditions = append(s.Conditions, c)
		}
	}
	s.Capacity = k.o.Capacity.DeepCopy()
	s.Allocatable = k.o.Capacity.DeepCopy()
	s.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fakeIP(k.name)}, {Type: corev1.NodeHostName, Address: k.name}}
	s.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}}
	s.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion:          k.o.Version,
		ContainerRuntimeVersion: "kwok://simulated",
		OperatingSystem:         runtime.GOOS,
		Architecture:            runtime.GOARCH,
		OSImage:                 "kok simulated host",
		MachineID:               k.name,
		SystemUUID:              k.name,
		BootID:                  k.name,
	}
	s.Phase = corev1.NodeRunning
}

// fakeIP gives each node a stable address of its own in 10.128.0.0/9, for kwok's pod IPs and
// for anything that lists node addresses.
func fakeIP(name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	v := h.Sum32()
	return fmt.Sprintf("10.%d.%d.%d", 128+(v>>16)&0x7f, (v>>8)&0xff, 1+v&0xfd)
}
