package kubelet

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
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

// Options configure a simulated kubelet.
type Options struct {
	NodeName string
	// Version is reported as the node's kubelet version, such as v1.37.2.
	Version string
	// LeaseDuration is the Lease's duration; it is renewed every quarter of it. Default 40s.
	LeaseDuration time.Duration
	// StatusInterval is the time between two posts of the node's status. Default 10s.
	StatusInterval time.Duration
	// Capacity is what the node offers (cpu, memory, pods); default 8 CPUs, 32Gi, 110 pods.
	Capacity corev1.ResourceList
	// RegisterSchedulable registers a new Node schedulable. Off by default: under kok a node
	// is born cordoned and only its Machine workflow uncordons it, once every readiness gate
	// passes (the real kubelet's --register-schedulable=false).
	RegisterSchedulable bool
	Logger              *slog.Logger
}

// Kubelet keeps one Node alive.
type Kubelet struct {
	o      Options
	nodes  coreclient.NodeInterface
	leases coordinationclient.LeaseInterface

	mu        sync.Mutex
	lastRenew time.Time
	lastErr   error
}

// New returns a kubelet that talks to the API server of cfg.
func New(cfg *rest.Config, o Options) (*Kubelet, error) {
	if o.NodeName == "" {
		return nil, errors.New("the node name is required")
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = 40 * time.Second
	}
	if o.StatusInterval <= 0 {
		o.StatusInterval = 10 * time.Second
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
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kok-sim-kubelet/" + o.Version
	core, err := coreclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	coord, err := coordinationclient.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Kubelet{o: o, nodes: core.Nodes(), leases: coord.Leases(corev1.NamespaceNodeLease)}, nil
}

// Healthy is nil while the Lease was renewed within its duration.
func (k *Kubelet) Healthy() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.lastRenew.IsZero() && k.lastErr != nil:
		return fmt.Errorf("node %s not registered yet: %w", k.o.NodeName, k.lastErr)
	case k.lastRenew.IsZero():
		return fmt.Errorf("node %s not registered yet", k.o.NodeName)
	case time.Since(k.lastRenew) > k.o.LeaseDuration && k.lastErr != nil:
		return fmt.Errorf("lease of node %s not renewed since %s: %w", k.o.NodeName, k.lastRenew.Format(time.RFC3339), k.lastErr)
	case time.Since(k.lastRenew) > k.o.LeaseDuration:
		return fmt.Errorf("lease of node %s not renewed since %s", k.o.NodeName, k.lastRenew.Format(time.RFC3339))
	}
	return nil
}

// Run registers the node, then renews its lease and posts its status until ctx ends.
func (k *Kubelet) Run(ctx context.Context) error {
	// Registration is retried: the API server may not be there yet when the host boots.
	backoff := time.Second
	for {
		err := k.register(ctx)
		if err == nil {
			break
		}
		k.setErr(err)
		k.o.Logger.Warn("cannot register node; retrying", "node", k.o.NodeName, "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
	k.o.Logger.Info("node registered", "node", k.o.NodeName, "version", k.o.Version)
	k.renew(ctx)
	k.postStatus(ctx)

	leaseTick := time.NewTicker(k.o.LeaseDuration / 4)
	defer leaseTick.Stop()
	statusTick := time.NewTicker(k.o.StatusInterval)
	defer statusTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-leaseTick.C:
			k.renew(ctx)
		case <-statusTick.C:
			k.postStatus(ctx)
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
		ObjectMeta: metav1.ObjectMeta{Name: k.o.NodeName, Labels: k.labels(), Annotations: k.annotations()},
		Spec:       corev1.NodeSpec{Unschedulable: !k.o.RegisterSchedulable},
	}
	_, err := k.nodes.Create(ctx, node, metav1.CreateOptions{})
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return err
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := k.nodes.Get(ctx, k.o.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
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
		"kubernetes.io/hostname": k.o.NodeName,
		"kubernetes.io/os":       runtime.GOOS,
		"kubernetes.io/arch":     runtime.GOARCH,
		LabelSimulated:           "true",
	}
}

func (k *Kubelet) annotations() map[string]string {
	return map[string]string{AnnotationKwokNode: KwokNodeValue}
}

// renew creates or renews the node's Lease.
func (k *Kubelet) renew(ctx context.Context) {
	err := k.renewOnce(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastErr = err
	if err == nil {
		k.lastRenew = time.Now()
	} else {
		k.o.Logger.Warn("cannot renew node lease", "node", k.o.NodeName, "err", err)
	}
}

func (k *Kubelet) renewOnce(ctx context.Context) error {
	now := metav1.NewMicroTime(time.Now())
	seconds := int32(k.o.LeaseDuration / time.Second)
	lease, err := k.leases.Get(ctx, k.o.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err := k.nodes.Get(ctx, k.o.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: k.o.NodeName, Namespace: corev1.NamespaceNodeLease,
				// As a kubelet does: the lease goes when the node does.
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
			},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &k.o.NodeName, LeaseDurationSeconds: &seconds, RenewTime: &now},
		}
		_, err = k.leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &k.o.NodeName, &seconds, &now
	_, err = k.leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// postStatus writes the node's status: Ready with a fresh heartbeat, no pressure, capacity.
func (k *Kubelet) postStatus(ctx context.Context) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := k.nodes.Get(ctx, k.o.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		k.fillStatus(&node.Status, metav1.Now())
		_, err = k.nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		k.o.Logger.Warn("cannot post node status", "node", k.o.NodeName, "err", err)
	}
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
	s.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: fakeIP(k.o.NodeName)}, {Type: corev1.NodeHostName, Address: k.o.NodeName}}
	s.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}}
	s.NodeInfo = corev1.NodeSystemInfo{
		KubeletVersion:          k.o.Version,
		ContainerRuntimeVersion: "kwok://simulated",
		OperatingSystem:         runtime.GOOS,
		Architecture:            runtime.GOARCH,
		OSImage:                 "kok simulated host",
		MachineID:               k.o.NodeName,
		SystemUUID:              k.o.NodeName,
		BootID:                  k.o.NodeName,
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
